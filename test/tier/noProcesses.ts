/**
 * Setup of every fast-tier file (jest.unit.config.js): it runs no external process, so a test that
 * starts one fails with the call named instead of making the tier slow.
 */
import { guardedChildProcess } from "./guard";

jest.mock("child_process", () => guardedChildProcess(jest.requireActual("child_process")));
jest.mock("node:child_process", () => guardedChildProcess(jest.requireActual("node:child_process")));
