/** `npm run bench -- [names…] [--smoke] [--out <dir>] [--database-url <url>] [--list]` */
export interface BenchArgs {
  names: string[];
  smoke: boolean;
  out: string | undefined;
  databaseUrl: string | undefined;
  list: boolean;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [<benchmark>…] [options]

Runs every benchmark, or the ones named, against a PostgreSQL server started for the run, prints
a table for each and writes bench/results/<benchmark>.json.

Options:
  --smoke               tiny sizes, a few seconds each: checks that the scripts work (results go
                        to bench/results/<benchmark>.tmp.json, which git ignores)
  --out <dir>           write the JSON files here instead
  --database-url <url>  use this PostgreSQL server (a superuser URL; the benchmarks create and
                        drop their own databases) instead of starting one
  --list                list the benchmarks and exit
  --help                this text`;

/** Parses the command line; throws with a message for the user on anything it does not know. */
export function parseBenchArgs(argv: readonly string[], known: readonly string[]): BenchArgs {
  const args: BenchArgs = {
    names: [],
    smoke: false,
    out: undefined,
    databaseUrl: process.env.BENCH_DATABASE_URL || undefined,
    list: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined || next.startsWith("--")) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--smoke") args.smoke = true;
    else if (arg === "--list") args.list = true;
    else if (arg === "--help" || arg === "-h") args.help = true;
    else if (arg === "--out") args.out = value();
    else if (arg.startsWith("--out=")) args.out = arg.slice("--out=".length);
    else if (arg === "--database-url") args.databaseUrl = value();
    else if (arg.startsWith("--database-url=")) args.databaseUrl = arg.slice(15);
    else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}`);
    else if (!known.includes(arg)) {
      throw new Error(`unknown benchmark "${arg}"; the benchmarks are: ${known.join(", ")}`);
    } else if (!args.names.includes(arg)) args.names.push(arg);
  }
  if (args.databaseUrl && !/^postgres(ql)?:\/\//.test(args.databaseUrl)) {
    throw new Error("--database-url: expected a postgres:// or postgresql:// URL");
  }
  return args;
}
