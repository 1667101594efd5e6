// A one-line progress report for long jobs on stderr: done/total, items per second, ETA.

export class Progress {
  private readonly start = performance.now();
  private last = 0;
  private done = 0;
  private failed = 0;

  constructor(
    readonly total: number,
    readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Counts one finished item (ok or failed) and redraws at most a few times a second. */
  tick(ok = true): void {
    this.done++;
    if (!ok) this.failed++;
    const now = performance.now();
    if (now - this.last > 250 || this.done === this.total) {
      this.last = now;
      this.draw(now);
    }
  }

  /** The current line, e.g. "segment 12/40 (1 failed) 2.31 img/s ETA 12s". */
  line(now = performance.now()): string {
    const secs = (now - this.start) / 1e3;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : Number.NaN;
    const failed = this.failed ? ` (${this.failed} failed)` : "";
    return `${this.label} ${this.done}/${this.total}${failed} ${rate.toFixed(2)} img/s ETA ${formatSeconds(eta)}`;
  }

  private draw(now: number): void {
    if (this.stream.isTTY)
      this.stream.write(`\r${this.line(now)}\x1b[K${this.done === this.total ? "\n" : ""}`);
    else if (this.done === this.total || this.done % Math.max(1, Math.ceil(this.total / 20)) === 0)
      this.stream.write(`${this.line(now)}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
