/**
 * The one place that decides what a stream may carry besides plain text: colour (mailkey prints
 * none today; whatever adds some asks here) and the escape that redraws a line (the device-code
 * countdown). Colour is off when NO_COLOR is set and not empty (https://no-color.org), when the
 * stream is not a terminal, and on TERM=dumb; redrawing needs a terminal that is not dumb.
 *
 * Owns: that decision. Must not: write anything.
 */
type Env = Readonly<Record<string, string | undefined>>

export interface TerminalAbilities {
  /** ANSI colours and text styles */
  colour: boolean
  /** carriage return, then ESC [ K: go back to the start of the line and clear it */
  redraw: boolean
}

export function terminalAbilities(env: Env, isTTY: boolean): TerminalAbilities {
  const dumb = env.TERM === 'dumb'
  const redraw = isTTY && !dumb
  return { redraw, colour: redraw && !env.NO_COLOR }
}
