#!/usr/bin/env node
// The scripted agent as a command (see scripted-agent.ts). Runs the TypeScript source directly:
// tsx compiles it on import, as in bin/conveyor.js.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./scripted-agent.ts");
process.exitCode = await main();
