import { describe, expect, it } from "vitest";
import { diffRows } from "./revisions";

describe("diffRows", () => {
  it("numbers each side's lines and marks what changed", () => {
    const rows = diffRows("id: a\ndescription: old\ntasks: []\n", "id: a\ndescription: new\ntasks: []\nextra: 1\n");
    expect(rows).toEqual([
      { kind: "same", oldLine: 1, newLine: 1, text: "id: a" },
      { kind: "del", oldLine: 2, newLine: null, text: "description: old" },
      { kind: "add", oldLine: null, newLine: 2, text: "description: new" },
      { kind: "same", oldLine: 3, newLine: 3, text: "tasks: []" },
      { kind: "add", oldLine: null, newLine: 4, text: "extra: 1" },
    ]);
  });

  it("is all unchanged for the same text", () => {
    expect(diffRows("a\nb", "a\nb").every((r) => r.kind === "same")).toBe(true);
  });
});
