// A unified line diff of two flow revisions, with each line's number on either side.
import { diffLines } from "diff";

export interface DiffRow {
  kind: "same" | "add" | "del";
  oldLine: number | null;
  newLine: number | null;
  text: string;
}

export function diffRows(before: string, after: string): DiffRow[] {
  const rows: DiffRow[] = [];
  let oldLine = 1;
  let newLine = 1;
  for (const part of diffLines(before, after)) {
    const lines = part.value.replace(/\n$/, "").split("\n");
    for (const text of lines) {
      if (part.added) rows.push({ kind: "add", oldLine: null, newLine: newLine++, text });
      else if (part.removed) rows.push({ kind: "del", oldLine: oldLine++, newLine: null, text });
      else rows.push({ kind: "same", oldLine: oldLine++, newLine: newLine++, text });
    }
  }
  return rows;
}
