const USAGE = `Usage: conveyor-runner <command>

Commands:
  start      connect to a Conveyor server and run tasks
  doctor     check git, the agent command, the server URL and the token
  help       show this help`;

/** The runner's command line. The runner itself arrives with the runner-agent issue. */
export function runnerCli(argv: string[]): number {
  const [command = "help"] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  process.stderr.write(
    `conveyor-runner: "${command}" is not available in this version yet.\n\n${USAGE}\n`,
  );
  return 2;
}

process.exitCode = runnerCli(process.argv.slice(2));
