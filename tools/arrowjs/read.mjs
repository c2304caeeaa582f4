// Reads one Arrow IPC file with Apache Arrow JS and prints, as JSON, what a
// test needs to compare with the Go writer: the row count, the column names and
// types, the schema metadata, and the first rows' values.
//
//   node read.mjs FILE [ROWS]
import { readFileSync } from "node:fs";
import { tableFromIPC } from "apache-arrow";

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: node read.mjs FILE [ROWS]");
  process.exit(2);
}
const table = tableFromIPC(readFileSync(file));
const limit = Math.min(table.numRows, Number(rowsArg ?? 3));

// Plain JSON values: lists become arrays, int32/float32 stay numbers.
const plain = (v) => {
  if (v === null || v === undefined) return null;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "object" && typeof v.toArray === "function") return Array.from(v.toArray(), plain);
  return v;
};

const rows = [];
for (let i = 0; i < limit; i++) {
  const row = {};
  for (const field of table.schema.fields) {
    row[field.name] = plain(table.getChild(field.name).get(i));
  }
  rows.push(row);
}
console.log(JSON.stringify({
  num_rows: table.numRows,
  columns: table.schema.fields.map((f) => f.name),
  types: table.schema.fields.map((f) => String(f.type)),
  metadata: Object.fromEntries(table.schema.metadata),
  rows,
}));
