// compare.js — the context store's benchmark workloads run against two
// npm libraries, for bench/run.sh (`npm install --prefix bench/compare`
// first). Prints markdown rows (what | figure | target).
//
//   node compare.js [FIGS]
//
// FIGS: a file with "#fig NAME VALUE" lines from bench_lstore (mgrun's own
// figures in the same run); when given, the ratios are printed too.
//
// 1. lru-cache (maxSize + sizeCalculation): 256-byte values, the cache at
//    its limit (1,000 entries' worth) evicting the least recently used =
//    the oldest, as mgrun's store evicting oldest. lru-cache holds
//    references; mgrun copies every message.
// 2. @langchain/core trimMessages: 4,000 messages (256 characters each),
//    trimmed to 10 % of their tokens, strategy "last", with a length/4
//    token counter whose calls are counted (mgrun: prune(400), zero calls
//    of its estimator during eviction).
"use strict";
const fs = require("fs");
const { LRUCache } = require("lru-cache");
const { trimMessages, HumanMessage, AIMessage } = require("@langchain/core/messages");

// Installed version of a package (its package.json may not be exported).
function version(name) {
  const path = require("path");
  return JSON.parse(fs.readFileSync(path.join(__dirname, "node_modules", name, "package.json"), "utf8")).version;
}

const figs = {};
if (process.argv[2]) {
  for (const line of fs.readFileSync(process.argv[2], "utf8").split("\n")) {
    const m = line.match(/^#fig (\S+) (\S+)/);
    if (m) figs[m[1]] = Number(m[2]);
  }
}

function lruSets(rounds, n) {
  const value = "x".repeat(256);
  const cache = new LRUCache({ maxSize: 1000 * 256, sizeCalculation: (v) => v.length });
  let key = 0;
  for (let i = 0; i < 1000; i++) cache.set(key++, value);
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) cache.set(key++, value);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, n / s);
  }
  if (cache.size !== 1000) throw new Error(`lru-cache holds ${cache.size}, expected 1000`);
  return best;
}

async function trim(rounds) {
  const messages = [];
  for (let i = 0; i < 4000; i++) {
    const content = "x".repeat(256);
    messages.push(i % 2 === 0 ? new HumanMessage(content) : new AIMessage(content));
  }
  let calls = 0;
  const tokenCounter = (msgs) => {
    calls++;
    let n = 0;
    for (const m of msgs) n += Math.ceil(m.content.length / 4);
    return n;
  };
  const total = tokenCounter(messages);
  calls = 0;
  const times = [];
  let kept = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    const out = await trimMessages(messages, { maxTokens: Math.floor(total / 10), tokenCounter, strategy: "last" });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    kept = out.length;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], calls: calls / rounds, kept };
}

(async () => {
  const sets = lruSets(5, 2000000);
  console.log(`| lru-cache ${version("lru-cache")} set, 256-byte values, at maxSize (1,000 entries) evicting oldest | ${(sets / 1e6).toFixed(1)} M sets/s | — |`);
  if (figs.c_adds_per_s)
    console.log(`| ratio mgrun C mg_store_add / lru-cache set (same run) | ${(figs.c_adds_per_s / sets).toFixed(2)}× | ≥ 2× |`);
  if (figs.lua_adds_per_s)
    console.log(`| ratio mgrun Lua ctx:add / lru-cache set (same run) | ${(figs.lua_adds_per_s / sets).toFixed(2)}× | — |`);
  const t = await trim(7);
  console.log(`| @langchain/core ${version("@langchain/core")} trimMessages 4,000 → 10 % (length/4 counter, median of 7) | ${t.ms.toFixed(2)} ms (${t.calls} counter calls, ${t.kept} kept) | — |`);
  if (figs.prune_ms)
    console.log(`| ratio trimMessages / mgrun prune(400) (same run) | ${(t.ms / figs.prune_ms).toFixed(0)}× | — |`);
  if (figs.keep_last_ms)
    console.log(`| ratio trimMessages / mgrun Lua keep_last(400) (same run) | ${(t.ms / figs.keep_last_ms).toFixed(1)}× | — |`);
})().catch((e) => {
  console.error(`compare.js: ${e.stack || e}`);
  process.exit(1);
});
