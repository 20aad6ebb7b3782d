// Deep pagination: numbered pages while they stay within the API's result window, then the
// `after` cursor of the page before; `page` is the number shown in both cases. Previous walks
// back the cursors this pager went through.

export interface Position {
  page: number;
  after: string; // "" on a numbered page
}

export class Pager {
  private walked: string[] = []; // the cursor of each page left by Next ("" = numbered)

  constructor(
    readonly size: number,
    readonly window: number,
  ) {}

  get lastNumbered(): number {
    return Math.floor(this.window / this.size);
  }

  // where Next goes from `at`, given the `next` cursor of the page shown (null: no more)
  next(at: Position, nextCursor: string | null | undefined): Position | null {
    const page = at.page + 1;
    if (!at.after && page * this.size <= this.window) return { page, after: "" };
    if (!nextCursor) return null;
    this.walked.push(at.after);
    return { page, after: nextCursor };
  }

  previous(at: Position): Position | null {
    const page = at.page - 1;
    if (page < 1) return null;
    if (!at.after) return { page, after: "" };
    const before = this.walked.pop();
    if (before) return { page, after: before };
    // the first cursor page, or a bookmarked deep page whose way back is unknown: the deepest
    // numbered page is the closest one reachable
    return { page: Math.min(page, this.lastNumbered), after: "" };
  }

  reset(): void {
    this.walked = [];
  }
}
