// A worker written with the official `phoenix` JavaScript client (npm), driven by
// tests/integration/test_coordinator_js.py: it claims one run from a Fulmen coordinator and
// reports it the way ws-worker does (spec §5.11), printing one JSON line per request and
// reply so that the test can hold the stored run to exactly what was sent.
//
//   node phoenix_worker.cjs <socket base URL> <worker token>
//
// Node 20 has no global WebSocket: the `ws` package's is passed as the transport.
"use strict";

const { Socket } = require("phoenix");
const WebSocket = require("ws");
const crypto = require("crypto");

const [url, token] = process.argv.slice(2);

function emit(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

function micros() {
  return (BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000))).toString();
}

function request(channel, event, payload) {
  return new Promise((resolve, reject) => {
    channel
      .push(event, payload, 10000)
      .receive("ok", (response) => {
        const shown = response instanceof ArrayBuffer
          ? { bytes: Buffer.from(response).toString("utf8") }
          : response;
        emit({ topic: channel.topic, event, payload, status: "ok", response: shown });
        resolve(response);
      })
      .receive("error", (response) => {
        emit({ topic: channel.topic, event, payload, status: "error", response });
        reject(new Error(`${event} refused: ${JSON.stringify(response)}`));
      })
      .receive("timeout", () => reject(new Error(`${event} timed out`)));
  });
}

function join(channel) {
  return new Promise((resolve, reject) => {
    channel
      .join(10000)
      .receive("ok", (response) => {
        emit({ topic: channel.topic, event: "phx_join", status: "ok", response });
        resolve(response);
      })
      .receive("error", (response) => {
        emit({ topic: channel.topic, event: "phx_join", status: "error", response });
        reject(new Error(`join of ${channel.topic} refused: ${JSON.stringify(response)}`));
      })
      .receive("timeout", () => reject(new Error(`join of ${channel.topic} timed out`)));
  });
}

async function work(socket) {
  const queue = socket.channel("worker:queue", { capacity: 1, queues: { "manual>*": 1 } });
  await join(queue);
  const claimed = await request(queue, "claim", { demand: 1, worker_name: "js-phoenix", queues: ["manual", "*"], languages: ["python"] });
  if (claimed.runs.length !== 1) throw new Error("expected one run");
  const { id, token: runToken } = claimed.runs[0];

  const run = socket.channel(`run:${id}`, { token: runToken });
  await join(run);
  const plan = await request(run, "fetch:plan", {});
  const input = JSON.parse(Buffer.from(await request(run, "fetch:dataclip", { id: plan.dataclip_id })).toString("utf8"));
  for (const credentialId of new Set(plan.jobs.map((j) => j.credential_id).filter(Boolean))) {
    await request(run, "fetch:credential", { id: credentialId });
  }
  await request(run, "run:log", { run_id: id, message: ["Timeout: 300s"], source: "RTE", level: "info", timestamp: micros() });
  await request(run, "run:start", { versions: { worker: "js-phoenix", "@openfn/language-common": ["1.0.0"] }, timestamp: micros() });

  let state = input;
  let inputId = plan.dataclip_id;
  let last = null;
  for (const job of plan.jobs) {
    const stepId = crypto.randomUUID();
    await request(run, "step:start", { step_id: stepId, job_id: job.id, input_dataclip_id: inputId, timestamp: micros() });
    await request(run, "run:log", { run_id: id, step_id: stepId, message: [`running ${job.name}`, { n: 1 }, null], source: "JOB", level: "info", timestamp: micros() });
    state = { data: { ...(state.data || {}), [job.name]: true }, references: [] };
    const outputId = crypto.randomUUID();
    await request(run, "step:complete", {
      step_id: stepId, job_id: job.id, reason: "success", error_type: null, error_message: null,
      output_dataclip_id: outputId, output_dataclip: JSON.stringify(state),
      mem: { job: 1000, system: 2000 }, duration: 12, thread_id: 1, timestamp: micros(),
    });
    inputId = outputId;
    last = outputId;
  }
  await request(run, "run:batch_logs", { run_id: id, logs: [
    { message: ["Run complete with status: success"], source: "R/T", level: "success", timestamp: micros() },
  ] });
  await request(run, "run:complete", {
    reason: "success", error_type: null, error_message: null, timestamp: micros(),
    final_state: state, final_dataclip_id: last,
  });
  await new Promise((resolve) => run.leave().receive("ok", resolve));
  emit({ topic: run.topic, event: "phx_leave", status: "ok" });
}

const socket = new Socket(url, {
  transport: WebSocket,
  params: { token, api_version: "1.2", worker_version: "js-phoenix" },
  reconnectAfterMs: () => 60000,
});
socket.onError(() => emit({ event: "socket_error" }));
socket.connect();
work(socket)
  .then(() => { emit({ event: "done" }); socket.disconnect(() => process.exit(0)); })
  .catch((error) => { emit({ event: "failed", message: String(error) }); process.exit(1); });
