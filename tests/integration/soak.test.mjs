// The soak's CI version (tests/integration/soak.mjs; `make soak` runs it for 10 minutes): 60 s of
// steady load from 6 clients, an upstream whose fault changes every 3 s, a config reload every
// 10 s. Nothing lost, no crash, a clean exit, memory and descriptors flat after warm-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { runSoak, summarize } from './soak.mjs';

test('60 s of load with faults and reloads: nothing lost, nothing leaked', { timeout: 150_000 }, async () => {
  const r = await runSoak({ durationS: 60, reloadS: 10, faultEveryS: 3, clients: 6 });
  const sum = summarize(r);
  const report = JSON.stringify({ ...r, samples: undefined, lost: r.lost.slice(0, 5), summary: sum });
  assert.equal(r.crashed, null, report);
  assert.deepEqual(r.lost, [], report);
  assert.equal(r.exit.code, 0, report);
  assert.ok(r.total > 1000, report);
  // Every fault was served at least once, and each reload took.
  for (const f of ['status_503', 'status_429', 'hang', 'reset', 'garbage', 'trickle', 'die_midstream'])
    assert.ok(r.faultsSeen[f] > 0, `${f} never happened: ${report}`);
  assert.ok(r.reloads >= 4, report);
  assert.equal(r.reloadsFailed, 0, report);
  // After warm-up (the first quarter) the RSS grows by less than 8 MiB and no descriptor leaks:
  // the connections in use at the last sample, at most, beyond those at warm-up.
  // Not under AddressSanitizer (scripts/sanitize-check.sh sets ASAN_OPTIONS): its quarantine
  // holds freed memory on purpose.
  if (!process.env.ASAN_OPTIONS) assert.ok(sum.lastRssMiB - sum.warmRssMiB < 8, report);
  assert.ok(sum.lastFds - sum.warmFds < 24, report);
});
