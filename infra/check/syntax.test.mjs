// Tests for syntax.mjs: run with `node --test infra/check/`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { findSyntaxErrors, listBicepFiles, loadParser, paramsAsVariables } from './syntax.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'syntax.mjs');

const valid = `@description('Queue name.')
@minLength(1)
param queueName string = 'orders'

var lock = 'PT\${60}S'

resource ns 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: 'sb-example'
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: ns
  name: queueName
  properties: {
    lockDuration: lock
    requiresSession: false
  }
}

output queueId string = queue.id
`;

let parser;
before(async () => {
  parser = await loadParser();
});
after(() => parser.delete());

describe('findSyntaxErrors', () => {
  test('a valid template has no errors', () => {
    assert.deepEqual(findSyntaxErrors(parser, valid), []);
  });

  // Each broken snippet must be reported near the mistake. Error recovery decides where exactly: an
  // unterminated string is noticed where input ends, a misspelt keyword where the previous statement
  // could have continued, so some cases accept two lines.
  const broken = [
    { name: 'unclosed object', text: "resource q 'A/b@2024-01-01' = {\n  name: 'x'\n", lines: [1] },
    { name: 'stray token', text: "param a string = 'x'\nparam b int = 1 2 3 )\n", lines: [2] },
    { name: 'unterminated string', text: "var ok = 1\nvar s = 'abc\n", lines: [2, 3] },
    { name: 'missing value', text: "var ok = 1\n\n\nvar x =\n", lines: [4] },
    { name: 'keyword typo', text: "param ok int = 1\nresorce q 'A/b@1' = {}\n", lines: [1, 2] },
  ];
  for (const c of broken) {
    test(`reports ${c.name}`, () => {
      const problems = findSyntaxErrors(parser, c.text);
      assert.ok(problems.length > 0, 'no error reported');
      assert.ok(
        problems.some((p) => c.lines.includes(p.line)),
        `no error on line ${c.lines.join(' or ')}: ${JSON.stringify(problems)}`,
      );
      for (const p of problems) {
        assert.ok(p.column >= 1, `column ${p.column}`);
        assert.match(p.message, /^(unexpected|missing) /);
      }
    });
  }

  test('parameter files are accepted and checked', () => {
    const good = "using './main.bicep'\n\nparam a = 'x'\nparam b = readEnvironmentVariable('B', '1')\n";
    assert.deepEqual(findSyntaxErrors(parser, good, 'bicepparam'), []);
    const bad = "using './main.bicep'\nparam a = 'x'\nparam b = {\n";
    const problems = findSyntaxErrors(parser, bad, 'bicepparam');
    assert.ok(problems.length > 0, 'unclosed object in a parameter file not reported');
  });
});

describe('paramsAsVariables', () => {
  test('keeps every line and column', () => {
    const text = "using 'x'\n  param name = 1\nparam typed int = 2\n";
    const out = paramsAsVariables(text);
    assert.equal(out.length, text.length);
    assert.equal(out, "using 'x'\n  var   name = 1\nparam typed int = 2\n");
  });
});

describe('command line', () => {
  let dir;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bicep-syntax-'));
    await writeFile(path.join(dir, 'good.bicep'), valid);
    await writeFile(path.join(dir, 'notes.txt'), 'not bicep {');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const run = (...args) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

  test('exit 0 on clean files, and only .bicep files are read', () => {
    const r = run(dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 file\(s\) OK/);
  });

  test('exit 1 with file:line:column on a broken file', async () => {
    const bad = path.join(dir, 'bad.bicep');
    await writeFile(bad, "param ok int = 1\nvar x = {\n  a: 1\n");
    try {
      const r = run(dir);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`${bad.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}:\\d+:\\d+: `));
    } finally {
      await rm(bad);
    }
  });

  test('exit 2 when a path does not exist, is not Bicep, or holds no Bicep file', async () => {
    assert.equal(run(path.join(dir, 'missing')).status, 2);
    const notBicep = run(path.join(dir, 'notes.txt'));
    assert.equal(notBicep.status, 2);
    assert.match(notBicep.stderr, /not a \.bicep or \.bicepparam file/);
    const empty = await mkdtemp(path.join(tmpdir(), 'bicep-empty-'));
    try {
      const r = run(empty);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /no \.bicep or \.bicepparam file/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('the repository templates pass', async () => {
    const files = await listBicepFiles([path.resolve(here, '..')]);
    assert.ok(files.some((f) => f.endsWith('main.bicep')), 'infra/main.bicep not found');
    const r = run();
    assert.equal(r.status, 0, r.stderr);
  });
});
