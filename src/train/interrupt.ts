// SIGINT / SIGTERM during a training run: the first one asks the loop to stop between two steps (the step
// under way and its hooks complete, so a checkpoint being written is finished, never left half); the run
// then ends with `interrupted` set and the CLI exits 130 / 143. A second signal exits at once (with the
// same code): JavaScript handlers run between two pieces of synchronous work, so even then a checkpoint
// write (synchronous, then renamed into place) is never cut in the middle.

export type StopSignal = "SIGINT" | "SIGTERM";

/** The exit code of a run ended by a signal: 128 + the signal's number, as a shell reports it. */
export const SIGNAL_EXIT_CODES: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

const SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

/** Signal handlers installed for a run's duration; `signal` is the first one received. */
export class StopRequests {
  signal: StopSignal | null = null;
  private readonly handlers = new Map<StopSignal, () => void>();

  /** Installs the handlers; `log` says what happens (on every rank that has a console). */
  constructor(log: (line: string) => void) {
    for (const sig of SIGNALS) {
      const handler = () => {
        if (this.signal === null) {
          this.signal = sig;
          log(`${sig} received: stopping after the current step (${sig} again to exit at once)`);
          return;
        }
        log(`${sig} received again: exiting now`);
        process.exit(SIGNAL_EXIT_CODES[this.signal]);
      };
      this.handlers.set(sig, handler);
      process.on(sig, handler);
    }
  }

  /** Removes the handlers (the default behaviour returns). */
  remove(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }
}

/** A signal as a number that ranks can agree on with a max-reduction (0 = none), and back. */
export function signalCode(s: StopSignal | null): number {
  return s === null ? 0 : SIGNALS.indexOf(s) + 1;
}
export function signalOfCode(code: number): StopSignal | null {
  return SIGNALS[code - 1] ?? null;
}
