/**
 * Facts about running as the single-file executable (ADR 0013), for the modules that start
 * another mailkey process. The executable's bundle sets import.meta.url to a file under EXE_ROOT,
 * a directory that exists nowhere; a path derived from it names an entry of the executable, which
 * is started as process.execPath with that path as its first argument (cli/bin-exe.ts).
 *
 * Owns: the marker. Must not: touch the file system.
 */
export const EXE_ROOT = '/__mailkey_exe__/'

/** Is this path an entry inside the single-file executable rather than a file? */
export function isExeEntry(path: string): boolean {
  return path.startsWith(EXE_ROOT)
}
