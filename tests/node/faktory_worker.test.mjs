// The npm package faktory-worker, unchanged, against the real zenith:
// 1,000 jobs pushed and processed by its own worker, all acknowledged; a
// job whose handler throws is retried per its backoff and ends dead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const faktory = require("faktory-worker");

const BIN = process.env.ZN_BIN || "build/zenith";
const MULT = Number(process.env.ZN_TEST_TIMEOUT_MULT || 1);

function startServer(password) {
  const dir = mkdtempSync(join(tmpdir(), "zn-node-"));
  const args = ["serve", "--data", dir, "--fwp", "127.0.0.1:0", "--http", "",
                "--no-workers"];
  if (password) args.push("--password", password);
  const proc = spawn(BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no server.listening:\n" + log)),
                             10000 * MULT);
    proc.stderr.on("data", (chunk) => {
      log += chunk;
      const m = log.match(/"event":"server.listening".*?"port":(\d+)/);
      if (m && !proc.port) {
        proc.port = Number(m[1]);
        clearTimeout(timer);
        resolve({ proc, dir, port: proc.port, log: () => log });
      }
    });
    proc.on("exit", (code) => reject(new Error(`server exited ${code}:\n${log}`)));
  });
}

async function stopServer(srv) {
  const exited = new Promise((r) => srv.proc.once("exit", (code) => r(code)));
  srv.proc.kill("SIGTERM");
  const code = await exited;
  rmSync(srv.dir, { recursive: true, force: true });
  return code;
}

async function waitFor(cond, ms) {
  const end = Date.now() + ms * MULT;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

for (const password of [undefined, "node-s3cret"]) {
  test(`faktory-worker pushes and works 1,000 jobs (password ${password ? "on" : "off"})`,
       { timeout: 120000 * MULT }, async () => {
    const srv = await startServer(password);
    const opts = { host: "127.0.0.1", port: srv.port, password };
    const client = await faktory.connect(opts);
    try {
      const seen = new Set();
      const worker = new faktory.Worker({
        ...opts, concurrency: 8, queues: ["default"],
        registry: { "node.job": async (n) => { seen.add(n); } },
      });
      await worker.work();
      const jids = [];
      for (let i = 0; i < 1000; i++)
        jids.push(await client.job("node.job", i).push());
      assert.equal(new Set(jids).size, 1000);
      const done = await waitFor(() => seen.size === 1000, 60000);
      assert.ok(done, `only ${seen.size} of 1000 jobs ran`);
      const ok = await waitFor(async () => {
        const info = await client.info();
        return info.faktory.total_processed === 1000;
      }, 10000);
      assert.ok(ok, "not every job was acknowledged");
      await worker.stop();
    } finally {
      await client.close();
      assert.equal(await stopServer(srv), 0, srv.log());
    }
  });
}

test("a throwing handler is retried per its backoff, then dead",
     { timeout: 120000 * MULT }, async () => {
  const srv = await startServer();
  const opts = { host: "127.0.0.1", port: srv.port };
  const client = await faktory.connect(opts);
  try {
    const starts = [];
    const worker = new faktory.Worker({
      ...opts, concurrency: 1, queues: ["default"],
      registry: {
        "node.boom": async () => {
          starts.push(Date.now());
          const e = new Error("boom");
          e.code = "BoomError";          // the client sends e.code as errtype
          throw e;
        },
      },
    });
    await worker.work();
    const job = client.job("node.boom", 1);
    job.retry = 2;                       // 3 tries in all
    job.custom = { backoff: [1, 2] };    // zenith reads backoff from custom
    const jid = await job.push();
    const dead = await waitFor(async () => {
      const r = JSON.parse(await client.send(["JOBS", JSON.stringify({ jid })]));
      return r.job.state === "dead" ? r : false;
    }, 30000);
    assert.ok(dead, "job did not reach dead");
    const r = JSON.parse(await client.send(["JOBS", JSON.stringify({ jid })]));
    assert.equal(r.attempts.length, 3);
    assert.equal(r.job.failure.errtype, "BoomError");
    assert.match(r.job.failure.message, /boom/);
    assert.equal(starts.length, 3);
    // Backoff 1 s then 2 s between the tries (100 ms tick, some slack).
    const gap1 = starts[1] - starts[0], gap2 = starts[2] - starts[1];
    assert.ok(gap1 >= 900 && gap1 < 2500 * MULT, `first retry after ${gap1} ms`);
    assert.ok(gap2 >= 1900 && gap2 < 3500 * MULT, `second retry after ${gap2} ms`);
    await worker.stop();
  } finally {
    await client.close();
    assert.equal(await stopServer(srv), 0, srv.log());
  }
});
