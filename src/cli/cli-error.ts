/**
 * A failure the operator can fix, with the exit code to end with: 2 for a wrong command line, 1
 * for everything else. The CLI prints the message alone, without a stack.
 */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}
