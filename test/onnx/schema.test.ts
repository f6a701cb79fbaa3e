import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fieldTable } from '../../scripts/onnx-proto-fields.js';
import { modelProtoType } from '../../src/onnx/schema.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'onnx-proto', 'fields-1.16.0.txt');

test('our onnx.proto declares every field of ONNX 1.16.0 with its number, label and type', () => {
  const official = readFileSync(FIXTURE, 'utf8').trim().split('\n');
  const ours = fieldTable(modelProtoType().root);
  const oursSet = new Set(ours);
  const officialSet = new Set(official);
  // Both directions: a missing field is dropped on a round trip, an extra one is our invention.
  assert.deepEqual(
    official.filter((row) => !oursSet.has(row)),
    [],
    'fields of ONNX 1.16.0 missing or different in src/onnx/schema.ts',
  );
  assert.deepEqual(
    ours.filter((row) => !officialSet.has(row)),
    [],
    'fields in src/onnx/schema.ts that ONNX 1.16.0 does not have',
  );
  assert.ok(official.length > 100, 'the fixture holds the whole table');
});
