#!/usr/bin/env node
/** The `mailkey` executable: wires process streams and signals to cli/main.ts (run-main.ts). */
import { runMain } from './run-main.js'

process.exitCode = await runMain(process.argv.slice(2))
