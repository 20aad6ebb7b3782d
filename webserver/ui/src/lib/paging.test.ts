import { describe, expect, it } from "vitest";
import { Pager } from "./paging";

describe("Pager", () => {
  it("numbers pages within the window, then follows cursors, and walks them back", () => {
    const pager = new Pager(25, 100); // 4 numbered pages
    expect(pager.next({ page: 1, after: "" }, "c1")).toEqual({ page: 2, after: "" });
    expect(pager.next({ page: 3, after: "" }, "c3")).toEqual({ page: 4, after: "" });
    const fifth = pager.next({ page: 4, after: "" }, "c4");
    expect(fifth).toEqual({ page: 5, after: "c4" });
    const sixth = pager.next(fifth!, "c5");
    expect(sixth).toEqual({ page: 6, after: "c5" });
    expect(pager.next(sixth!, null)).toBeNull(); // the last page
    expect(pager.previous(sixth!)).toEqual({ page: 5, after: "c4" });
    expect(pager.previous(fifth!)).toEqual({ page: 4, after: "" });
    expect(pager.previous({ page: 4, after: "" })).toEqual({ page: 3, after: "" });
    expect(pager.previous({ page: 1, after: "" })).toBeNull();
  });

  it("goes back from a bookmarked deep page to the deepest numbered page", () => {
    const pager = new Pager(25, 100);
    expect(pager.previous({ page: 9, after: "c8" })).toEqual({ page: 4, after: "" });
    expect(pager.previous({ page: 3, after: "c2" })).toEqual({ page: 2, after: "" });
  });

  it("forgets the way back on reset (new filters)", () => {
    const pager = new Pager(10, 10);
    const second = pager.next({ page: 1, after: "" }, "c1")!;
    expect(second).toEqual({ page: 2, after: "c1" });
    pager.next(second, "c2");
    pager.reset();
    expect(pager.previous({ page: 3, after: "c2" })).toEqual({ page: 1, after: "" });
  });
});
