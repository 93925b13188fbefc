-- Schema version 13 is the alerts' (issue 18), made on another branch at the same time as the
-- audit trail's 14: this file only keeps the numbers without a gap on the audit branch. It is
-- replaced by the alerts' file when the branches are merged, before any release.
SELECT 1;
