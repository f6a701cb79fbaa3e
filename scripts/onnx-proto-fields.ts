/**
 * @file Writes the field table of an onnx.proto: one line per message field (number, label,
 * type) and per oneof. test/onnx/schema.test.ts holds our hand-kept schema (src/onnx/schema.ts)
 * against the table of the ONNX release we claim, so a field we forgot or misnumbered (which
 * protobufjs would silently drop on a round trip) fails a test instead of a user's model.
 *
 *   node --import tsx scripts/onnx-proto-fields.ts <onnx checkout>/onnx/onnx.proto \
 *     > test/fixtures/onnx-proto/fields-1.16.0.txt
 *
 * Enums are left out: the schema reads enum-typed fields as their integer values, and the
 * data-type and version enums are never a field's type.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import protobuf from 'protobufjs';

/** Sorted lines `Message.field = number label type` and `Message oneof name: fields`. */
export function fieldTable(root: protobuf.NamespaceBase): string[] {
  const rows: string[] = [];
  const walk = (space: protobuf.NamespaceBase, prefix: string): void => {
    for (const nested of space.nestedArray) {
      const name = `${prefix}${nested.name}`;
      if (nested instanceof protobuf.Type) {
        for (const f of nested.fieldsArray) {
          rows.push(
            `${name}.${f.name} = ${f.id} ${f.repeated ? 'repeated' : 'optional'} ${f.type}`,
          );
        }
        for (const o of nested.oneofsArray)
          rows.push(`${name} oneof ${o.name}: ${o.oneof.join(',')}`);
        walk(nested, `${name}.`);
      } else if (nested instanceof protobuf.Namespace) {
        walk(nested, `${name}.`);
      }
    }
  };
  walk(root, '');
  return rows.sort();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const path = process.argv[2];
  if (path === undefined) {
    process.stderr.write('usage: onnx-proto-fields.ts <path to onnx.proto>\n');
    process.exit(2);
  }
  const root = protobuf.parse(readFileSync(path, 'utf8'), { keepCase: true }).root;
  process.stdout.write(`${fieldTable(root).join('\n')}\n`);
}
