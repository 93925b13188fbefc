-- Issue 16: a Python job names the packages its code imports besides its adaptor
-- (requirements, exact pins: {"httpx==0.28.1"}), saved with the job like its adaptor. Every
-- job saved before had none, which is what the default says; snapshot documents are left as
-- they are (a job without "requirements" has none: job_from_document).
ALTER TABLE jobs ADD COLUMN requirements text[] NOT NULL DEFAULT '{}';
