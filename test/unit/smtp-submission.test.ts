/**
 * The post-auth SMTP submission session (protocols/smtp/submission.ts): transcripts for every
 * command and refusal, each fed whole, byte by byte and in 7-byte pieces (same answers every
 * time); message data read byte-exactly (dot-stuffing, CR/LF oddities, smuggling attempts, a 1-MiB
 * message); size, recipient, line, command and held-input limits; pipelined transactions with the
 * verdict given later.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import {
  createSubmissionSession,
  MAX_QUEUED_BYTES,
  type SubmissionAction,
  type SubmissionOptions,
  type SubmissionSession,
} from '../../src/protocols/smtp/submission.js'

const BASE: SubmissionOptions = { hostname: 'mx.local', maxMessageBytes: 1000, maxRecipients: 3 }
const EHLO =
  '250-mx.local\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n'
const OK = '250 2.0.0 OK\r\n'
const SENDER = '250 2.1.0 Sender OK\r\n'
const RCPT = '250 2.1.5 Recipient OK\r\n'
const GO = '354 Start mail input; end with <CRLF>.<CRLF>\r\n'
const QUEUED = '250 2.0.0 OK queued as Graph 202'

/** what the session did, as one string; a submit shows its envelope and message */
function render(actions: SubmissionAction[]): string {
  return actions
    .map((a) => {
      if (a.type === 'reply') return a.data
      if (a.type === 'close') return `${a.data ?? ''}[close]`
      const e = a.envelope
      const flags = [e.size === undefined ? '' : ` SIZE=${e.size}`, ` ${e.body}`, e.smtputf8 ? ' SMTPUTF8' : ''].join(
        '',
      )
      return `[submit <${e.from}> -> ${e.to.map((t) => `<${t}>`).join(',')}${flags}: ${JSON.stringify(a.message.toString('latin1'))}]`
    })
    .join('')
}

type Step = [input: string | Buffer | { submitted: string }, expected: string]

/** feed `input` in pieces of `size` bytes (0: whole) */
function feedIn(s: SubmissionSession, input: Buffer, size: number): SubmissionAction[] {
  if (size === 0) return s.feed(input)
  const out: SubmissionAction[] = []
  for (let i = 0; i < input.length; i += size) out.push(...s.feed(input.subarray(i, i + size)))
  return out
}

/** run the steps three times: input whole, byte by byte, in 7-byte pieces; each step's answer must match */
function transcript(steps: Step[], opts: Partial<SubmissionOptions> = {}): void {
  for (const size of [0, 1, 7]) {
    const s = createSubmissionSession({ ...BASE, ...opts })
    for (const [i, [input, expected]] of steps.entries()) {
      const actions =
        typeof input === 'string' || Buffer.isBuffer(input)
          ? feedIn(s, typeof input === 'string' ? Buffer.from(input, 'utf8') : input, size)
          : s.submitted(input.submitted)
      assert.equal(render(actions), expected, `step ${i} (pieces of ${size || 'all'}): ${JSON.stringify(input)}`)
    }
  }
}

const TX = 'MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n'
const TX_OK = `${SENDER}${RCPT}${GO}`
const SUBMIT = (msg: string, to = '<bob@example.com>', from = 'alice@example.com', flags = ' 7BIT'): string =>
  `[submit <${from}> -> ${to}${flags}: ${JSON.stringify(msg)}]`

interface Case {
  name: string
  opts?: Partial<SubmissionOptions>
  steps: Step[]
}

const commands: Case[] = [
  { name: 'EHLO lists SIZE, 8BITMIME, SMTPUTF8, PIPELINING, ENHANCEDSTATUSCODES', steps: [['EHLO c\r\n', EHLO]] },
  { name: 'HELO', steps: [['helo c\r\n', '250 mx.local\r\n']] },
  {
    name: 'EHLO/HELO need a domain',
    steps: [['EHLO\r\nHELO \r\n', '501 5.5.4 Syntax: EHLO domain\r\n501 5.5.4 Syntax: HELO domain\r\n']],
  },
  {
    name: 'AUTH and STARTTLS are over (RFC 4954 §4, RFC 3207 §4)',
    steps: [
      ['AUTH PLAIN AGFAYg==\r\n', '503 5.5.1 Already authenticated\r\n'],
      ['STARTTLS\r\n', '503 5.5.1 STARTTLS not available after authentication\r\n'],
    ],
  },
  {
    name: 'BDAT (no CHUNKING), VRFY, EXPN, HELP, NOOP with and without arguments',
    steps: [
      ['BDAT 5 LAST\r\n', '502 5.5.1 CHUNKING not offered\r\n'],
      ['VRFY bob\r\n', '252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n'],
      ['EXPN staff\r\n', '502 5.5.1 EXPN not implemented\r\n'],
      ['HELP\r\n', '214 2.0.0 mailkey proxy: MAIL FROM, RCPT TO, DATA, as usual\r\n'],
      ['NOOP\r\nnoop anything at all\r\n', OK + OK],
    ],
  },
  {
    name: 'unknown verbs and invalid bytes: 500, nothing echoed',
    steps: [
      ['XYZZY plugh\r\n', '500 5.5.2 Command not recognized\r\n'],
      ['constructor\r\n', '500 5.5.2 Command not recognized\r\n'],
      ['NOOP a\0b\r\n', '500 5.5.2 Invalid characters in command\r\n'],
      [Buffer.from('MAIL FROM:<\xff@x>\r\n', 'latin1'), '500 5.5.2 Invalid characters in command\r\n'],
      ['NOOP a\rb\r\n', '500 5.5.2 Invalid characters in command\r\n'],
    ],
  },
  { name: 'QUIT: 221, then close', steps: [['QUIT\r\nNOOP\r\n', '221 2.0.0 mx.local closing connection\r\n[close]']] },
  {
    name: 'a whole transaction; the verdict is what the proxy says',
    steps: [
      ['EHLO c\r\n' + TX + 'Subject: hi\r\n\r\nhello\r\n.\r\n', EHLO + TX_OK + SUBMIT('Subject: hi\r\n\r\nhello\r\n')],
      [{ submitted: QUEUED }, `${QUEUED}\r\n`],
      ['QUIT\r\n', '221 2.0.0 mx.local closing connection\r\n[close]'],
    ],
  },
  {
    name: 'lower-case verbs and keywords, a space after the colon',
    steps: [
      [
        'mail from: <a@example.com>\r\nrcpt to: <b@example.com>\r\ndata\r\nx\r\n.\r\n',
        TX_OK + SUBMIT('x\r\n', '<b@example.com>', 'a@example.com'),
      ],
    ],
  },
  {
    name: 'null sender, source routes, quoted local parts, address literals, postmaster',
    steps: [
      [
        'MAIL FROM:<>\r\nRCPT TO:<@a.example,@b.example:user@d.example>\r\nRCPT TO:<"john \\"q\\" doe"@example.com>\r\n' +
          'RCPT TO:<"a>b"@example.com>\r\nRSET\r\n',
        SENDER + RCPT + RCPT + RCPT + OK,
      ],
      [
        'MAIL FROM:<@relay.example:alice@example.com>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<u@[192.0.2.1]>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${RCPT}${GO}${SUBMIT('', '<Postmaster>,<u@[192.0.2.1]>')}`,
      ],
    ],
  },
  {
    name: 'MAIL syntax errors',
    steps: [
      [
        [
          'MAIL\r\n',
          'MAIL FROM a@b.example\r\n',
          'MAIL FROM:a@b.example\r\n',
          'MAIL FROM:<a@b.example\r\n',
          'MAIL FROM:<a@b.example>SIZE=1\r\n',
          'MAIL TO:<a@b.example>\r\n',
        ].join(''),
        '501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n'.repeat(6),
      ],
      [
        [
          'MAIL FROM:<a b@c.example>\r\n',
          'MAIL FROM:<@a.example:>\r\n',
          'MAIL FROM:<a@>\r\n',
          'MAIL FROM:<a@-b>\r\n',
        ].join(''),
        '501 5.1.7 Bad sender address syntax\r\n'.repeat(4),
      ],
      [
        'MAIL FROM:<a..b@c.example>\r\nMAIL FROM:<"a@c.example>\r\n',
        // an unclosed quote hides the ">": the path never ends
        '501 5.1.7 Bad sender address syntax\r\n501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n',
      ],
    ],
  },
  {
    name: 'MAIL parameters: SIZE, BODY, SMTPUTF8, AUTH=, others refused',
    steps: [
      [
        'MAIL FROM:<a@example.com> SIZE=1000 body=8bitmime SMTPUTF8 AUTH=<>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${GO}${SUBMIT('', '<b@example.com>', 'a@example.com', ' SIZE=1000 8BITMIME SMTPUTF8')}`,
      ],
      [{ submitted: QUEUED }, `${QUEUED}\r\n`],
      ['MAIL FROM:<a@example.com> SIZE=1001\r\n', '552 5.3.4 Message size exceeds fixed maximum message size\r\n'],
      [
        'MAIL FROM:<a@example.com> SIZE=99999999999999999999\r\n',
        '552 5.3.4 Message size exceeds fixed maximum message size\r\n',
      ],
      [
        'MAIL FROM:<a@example.com> SIZE=1e3\r\nMAIL FROM:<a@example.com> SIZE\r\n',
        '501 5.5.4 Syntax: SIZE=<bytes>\r\n'.repeat(2),
      ],
      ['MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n', '555 5.5.4 BODY value not supported\r\n'],
      ['MAIL FROM:<a@example.com> BODY\r\n', '501 5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME\r\n'],
      ['MAIL FROM:<a@example.com> SMTPUTF8=yes\r\n', '501 5.5.4 SMTPUTF8 takes no value\r\n'],
      ['MAIL FROM:<a@example.com> RET=FULL\r\n', '555 5.5.4 MAIL FROM parameter RET not supported\r\n'],
      ['MAIL FROM:<a@example.com> SIZE=1 SIZE=2\r\n', '501 5.5.4 Duplicate parameter SIZE\r\n'],
      [
        'MAIL FROM:<a@example.com> X=a=b\r\nMAIL FROM:<a@example.com> -X\r\n',
        '501 5.5.4 Syntax error in parameters\r\n'.repeat(2),
      ],
      [
        'MAIL FROM:<a@example.com> BODY=7BIT AUTH=alice+40example.com  SIZE=10\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${GO}${SUBMIT('', '<b@example.com>', 'a@example.com', ' SIZE=10 7BIT')}`,
      ],
    ],
  },
  {
    name: 'a second MAIL inside a transaction: 503',
    steps: [
      ['MAIL FROM:<a@example.com>\r\nMAIL FROM:<b@example.com>\r\n', `${SENDER}503 5.5.1 Sender already given\r\n`],
    ],
  },
  {
    name: 'non-ASCII addresses need SMTPUTF8 (RFC 6531 §3.5: 550 at MAIL, 553 at RCPT)',
    steps: [
      ['MAIL FROM:<jörg@bücher.example>\r\n', '550 5.6.7 Non-ASCII address requires SMTPUTF8\r\n'],
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<ünï@example.com>\r\nRSET\r\n',
        `${SENDER}553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n${OK}`,
      ],
      [
        'MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<ünï@例え.jp>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${GO}${SUBMIT('', '<ünï@例え.jp>', 'jörg@bücher.example', ' 7BIT SMTPUTF8')}`,
      ],
    ],
  },
  {
    name: 'RCPT: before MAIL, with parameters (no DSN), bad syntax',
    steps: [
      ['RCPT TO:<b@example.com>\r\n', '503 5.5.1 Need MAIL command\r\n'],
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com> NOTIFY=NEVER\r\nRCPT TO:<b@example.com> ORCPT=rfc822;b@example.com\r\n',
        `${SENDER}${'555 5.5.4 RCPT TO parameters not supported\r\n'.repeat(2)}`,
      ],
      ['RCPT TO:<b@@example.com>\r\nRCPT TO:<>\r\n', '501 5.1.3 Bad recipient address syntax\r\n'.repeat(2)],
      ['RCPT TO:b@example.com\r\nRCPT FROM:<b@example.com>\r\n', '501 5.5.4 Syntax: RCPT TO:<address>\r\n'.repeat(2)],
    ],
  },
  {
    name: 'duplicate recipients are kept once, first spelling, case-insensitively',
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<Bob@Example.com>\r\nRCPT TO:<bob@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${RCPT}${RCPT}${GO}${SUBMIT('', '<Bob@Example.com>,<c@example.com>', 'a@example.com')}`,
      ],
    ],
  },
  {
    name: 'more than maxRecipients: 452 4.5.3 (RFC 5321 §4.5.3.1.10), the message goes to the first ones',
    opts: { maxRecipients: 2 },
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<r1@example.com>\r\nRCPT TO:<r2@example.com>\r\nRCPT TO:<r3@example.com>\r\n' +
          'RCPT TO:<R1@example.com>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${RCPT}452 4.5.3 Too many recipients\r\n${RCPT}${GO}${SUBMIT('', '<r1@example.com>,<r2@example.com>', 'a@example.com')}`,
      ],
    ],
  },
  {
    name: 'DATA out of sequence: 503 before MAIL or RCPT, 554 when every RCPT was refused, 501 with arguments',
    steps: [
      ['DATA\r\n', '503 5.5.1 Need MAIL command\r\n'],
      ['MAIL FROM:<a@example.com>\r\nDATA\r\n', `${SENDER}503 5.5.1 Need RCPT command\r\n`],
      [
        'RCPT TO:<bad address>\r\nDATA\r\n',
        '501 5.1.3 Bad recipient address syntax\r\n554 5.5.1 No valid recipients\r\n',
      ],
      ['RCPT TO:<b@example.com>\r\nDATA now\r\n', `${RCPT}501 5.5.4 Syntax: DATA\r\n`],
    ],
  },
  {
    name: 'RFC 2920 §3.1: DATA refused in a pipeline, the message that follows is read as commands',
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com> NOTIFY=NEVER\r\nDATA\r\nSubject: x\r\n\r\nNOOP\r\n.\r\nQUIT\r\n',
        SENDER +
          '555 5.5.4 RCPT TO parameters not supported\r\n' +
          '554 5.5.1 No valid recipients\r\n' +
          '500 5.5.2 Command not recognized\r\n' + // Subject: x
          '500 5.5.2 Command not recognized\r\n' + // the empty line
          OK + // NOOP: a command, since no data is being read
          '500 5.5.2 Command not recognized\r\n' + // "."
          '221 2.0.0 mx.local closing connection\r\n[close]',
      ],
    ],
  },
  {
    name: 'RSET and EHLO end the transaction; HELO too',
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\nRSET\r\nRCPT TO:<b@example.com>\r\n',
        `${SENDER}${OK}503 5.5.1 Need MAIL command\r\n`,
      ],
      [
        'MAIL FROM:<a@example.com>\r\nEHLO c\r\nRCPT TO:<b@example.com>\r\n',
        `${SENDER}${EHLO}503 5.5.1 Need MAIL command\r\n`,
      ],
      ['MAIL FROM:<a@example.com>\r\nHELO c\r\nDATA\r\n', `${SENDER}250 mx.local\r\n503 5.5.1 Need MAIL command\r\n`],
    ],
  },
  {
    name: 'QUIT inside a transaction submits nothing; after 354 it is message data',
    steps: [['MAIL FROM:<a@example.com>\r\nQUIT\r\n', `${SENDER}221 2.0.0 mx.local closing connection\r\n[close]`]],
  },
  {
    name: 'after 354, command verbs are message data',
    steps: [[`${TX}QUIT\r\nRSET\r\n`, TX_OK]],
  },
  {
    name: 'a line over maxLineBytes: 500 5.5.2 at its end, then the session goes on',
    opts: { maxLineBytes: 512 },
    steps: [
      [`NOOP ${'a'.repeat(505)}\r\n`, OK], // 512 bytes with CRLF: at the limit
      [`NOOP ${'a'.repeat(506)}\r\n`, '500 5.5.2 Line too long\r\n'],
      [`MAIL FROM:<${'x'.repeat(5000)}@example.com>\r\nNOOP\r\n`, `500 5.5.2 Line too long\r\n${OK}`],
    ],
  },
  {
    name: 'too many commands between messages: 421 and close',
    opts: { maxCommands: 3 },
    steps: [
      ['NOOP\r\nNOOP\r\nbogus\r\n', `${OK}${OK}500 5.5.2 Command not recognized\r\n`],
      ['NOOP\r\n', '421 4.7.0 mx.local Too many commands, closing connection\r\n[close]'],
      ['NOOP\r\n', ''],
    ],
  },
  {
    name: 'accepted transaction steps do not count, and a message resets the count',
    opts: { maxCommands: 2 },
    steps: [
      ['NOOP\r\nNOOP\r\n', OK + OK],
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n.\r\n',
        `${SENDER}${RCPT}${RCPT}${GO}${SUBMIT('', '<b@example.com>,<c@example.com>', 'a@example.com')}`,
      ],
      [{ submitted: QUEUED }, `${QUEUED}\r\n`],
      ['NOOP\r\nNOOP\r\n', OK + OK],
      ['RSET\r\n', '421 4.7.0 mx.local Too many commands, closing connection\r\n[close]'],
    ],
  },
  {
    name: 'refused transaction commands count',
    opts: { maxCommands: 2 },
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com> X=1\r\nRCPT TO:<b@example.com> X=1\r\nRCPT TO:<b@example.com> X=1\r\n',
        `${SENDER}${'555 5.5.4 RCPT TO parameters not supported\r\n'.repeat(2)}421 4.7.0 mx.local Too many commands, closing connection\r\n[close]`,
      ],
    ],
  },
  {
    name: 'RCPTs over the limit and repeats do not count as commands, up to as many again as the limit',
    opts: { maxRecipients: 2, maxCommands: 2 },
    steps: [
      [
        'MAIL FROM:<a@example.com>\r\n' + [1, 2, 1, 3].map((n) => `RCPT TO:<r${n}@example.com>\r\n`).join(''),
        `${SENDER}${RCPT}${RCPT}${RCPT}452 4.5.3 Too many recipients\r\n`,
      ],
      // the 5th and 6th RCPT count (2 commands); the 7th is one too many
      ['RCPT TO:<r1@example.com>\r\nRCPT TO:<r4@example.com>\r\n', `${RCPT}452 4.5.3 Too many recipients\r\n`],
      ['RCPT TO:<r5@example.com>\r\n', '421 4.7.0 mx.local Too many commands, closing connection\r\n[close]'],
    ],
  },
  {
    name: 'pipelined transactions: input after the data waits for the verdict, then is answered in order',
    steps: [
      [
        `${TX}one\r\n.\r\nMAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n`,
        `${TX_OK}${SUBMIT('one\r\n')}`,
      ],
      ['two\r\n.\r\nQUIT\r\n', ''],
      [
        { submitted: '451 4.4.1 Graph did not answer, try again later' },
        `451 4.4.1 Graph did not answer, try again later\r\n${TX_OK}${SUBMIT('two\r\n', '<d@example.com>', 'c@example.com')}`,
      ],
      [{ submitted: `${QUEUED}\r\n` }, `${QUEUED}\r\n221 2.0.0 mx.local closing connection\r\n[close]`],
    ],
  },
  {
    name: 'a verdict of several lines; a 421 verdict closes (RFC 5321 §3.8)',
    steps: [
      [`${TX}x\r\n.\r\n`, TX_OK + SUBMIT('x\r\n')],
      [
        { submitted: '554-5.7.1 not allowed\r\n554 5.7.1 to send as this user' },
        '554-5.7.1 not allowed\r\n554 5.7.1 to send as this user\r\n',
      ],
      [`${TX}x\r\n.\r\nNOOP\r\n`, TX_OK + SUBMIT('x\r\n')],
      [{ submitted: '421 4.3.0 mailkey is shutting down' }, '421 4.3.0 mailkey is shutting down\r\n[close]'],
      ['NOOP\r\n', ''],
    ],
  },
  {
    name: 'a message over maxMessageBytes is read to its end, then 552 5.3.4; the next one goes',
    opts: { maxMessageBytes: 10 },
    steps: [
      [`${TX}0123456789\r\n.\r\n`, `${TX_OK}552 5.3.4 Message size exceeds fixed maximum message size\r\n`],
      [`${TX}01234567\r\n.\r\n`, TX_OK + SUBMIT('01234567\r\n')],
    ],
  },
]

describe('SMTP submission: commands (whole, byte by byte, 7-byte pieces)', () => {
  for (const c of commands) test(c.name, () => transcript(c.steps, c.opts))
})

/** dot-stuff a message for the wire (RFC 5321 §4.5.2): a "." starting a line gets another one */
function stuffed(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1')
}

/** the message the session submits for `data` (after 354), fed in pieces of `size` */
function received(data: Buffer, size: number, opts: Partial<SubmissionOptions> = {}): Buffer | string {
  const s = createSubmissionSession({ ...BASE, maxMessageBytes: 4 * 1024 * 1024, ...opts })
  assert.equal(render(s.feed(Buffer.from(TX))), TX_OK)
  const actions = feedIn(s, data, size)
  const submit = actions.find((a) => a.type === 'submit')
  if (!submit || actions.length !== 1) return render(actions)
  return submit.message
}

describe('SMTP submission: message data', () => {
  // [data as sent after 354, the message that must arrive]
  const cases: [string, string, string][] = [
    ['a plain message', 'Subject: x\r\n\r\nhi\r\n.\r\n', 'Subject: x\r\n\r\nhi\r\n'],
    ['an empty message', '.\r\n', ''],
    ['a message of one empty line', '\r\n.\r\n', '\r\n'],
    ['dot-stuffed lines lose one dot', 'a\r\n..\r\n...x\r\n..\r\n.\r\n', 'a\r\n.\r\n..x\r\n.\r\n'],
    ['a first line that starts with ".."', '..hidden\r\n.\r\n', '.hidden\r\n'],
    ['an unstuffed leading dot is dropped (RFC 5321 §4.5.2)', '.x\r\n.\r\n', 'x\r\n'],
    ['smuggling: LF.LF is data', 'a\n.\nMAIL FROM:<e@vil.example>\r\n.\r\n', 'a\n.\nMAIL FROM:<e@vil.example>\r\n'],
    ['smuggling: CR.CR is data', 'a\r.\rRCPT TO:<x@y.example>\r\n.\r\n', 'a\r.\rRCPT TO:<x@y.example>\r\n'],
    ['smuggling: CRLF.LF is data (the dot is stuffing)', 'a\r\n.\nDATA\r\n.\r\n', 'a\r\n\nDATA\r\n'],
    ['smuggling: LF.CRLF is data', 'a\n.\r\nb\r\n.\r\n', 'a\n.\r\nb\r\n'],
    ['smuggling: CRLF.CR then more is data', 'a\r\n.\rb\r\n.\r\n', 'a\r\n\rb\r\n'],
    ['smuggling: CRLF.CRCRLF is data', 'a\r\n.\r\r\n.\r\n', 'a\r\n\r\r\n'],
    ['bare CR and LF kept byte for byte', 'a\rb\nc\r\r\nd\n\r\n.\r\n', 'a\rb\nc\r\r\nd\n\r\n'],
    ['a dot after a bare LF is kept', 'x\n..y\r\n.\r\n', 'x\n..y\r\n'],
    [
      'NUL and 8-bit bytes are data',
      'Subject: Gr\xfc\xdfe \xff\0\r\n\r\n\x80\r\n.\r\n',
      'Subject: Gr\xfc\xdfe \xff\0\r\n\r\n\x80\r\n',
    ],
  ]
  for (const [name, data, message] of cases) {
    test(name, () => {
      for (const size of [0, 1, 2, 3, 7]) {
        const got = received(Buffer.from(data, 'latin1'), size)
        assert.ok(Buffer.isBuffer(got), `pieces of ${size}: ${String(got)}`)
        assert.equal(got.toString('latin1'), message, `pieces of ${size}`)
      }
    })
  }

  test('a message that never ends is never submitted', () => {
    for (const data of ['a\n.\n', 'a\r.\r', 'a\r\n.\n', 'a\r\n. \r\n', 'a\r\n.\r']) {
      assert.equal(received(Buffer.from(data), 1), '', JSON.stringify(data))
      assert.equal(received(Buffer.from(data), 0), '', JSON.stringify(data))
    }
  })

  test('an LF-only client (its DATA line ended in a bare LF): LF "." LF ends its message, CRLF "." CRLF too', () => {
    for (const [data, message] of [
      ['Subject: x\n\nhi\n..dot\n.\n', 'Subject: x\n\nhi\n.dot\n'],
      ['a\r\nb\r\n.\r\n', 'a\r\nb\r\n'],
    ] as const) {
      for (const size of [0, 1, 7]) {
        const s = createSubmissionSession({ ...BASE, maxMessageBytes: 1024 * 1024 })
        const head = render(s.feed(Buffer.from('MAIL FROM:<alice@example.com>\nRCPT TO:<bob@example.com>\nDATA\n')))
        assert.match(head, /^354 /m)
        const actions = feedIn(s, Buffer.from(data), size)
        const submit = actions.find((a) => a.type === 'submit')
        assert.ok(submit && submit.type === 'submit', `pieces of ${size}: ${render(actions)}`)
        assert.equal(submit.message.toString('latin1'), message, `pieces of ${size}`)
      }
    }
  })

  test('1 MiB with 8-bit headers, an attachment, dot lines and CR/LF oddities arrives byte-identical', () => {
    const message = bigMessage(1024 * 1024)
    const wire = Buffer.concat([stuffed(message), Buffer.from('.\r\n')])
    assert.ok(wire.length > message.length, 'the message has lines to stuff')
    for (const size of [1, 7, 0]) {
      const got = received(wire, size)
      assert.ok(Buffer.isBuffer(got), `pieces of ${size}: ${String(got)}`)
      assert.ok(got.equals(message), `pieces of ${size}: ${got.length} bytes, expected ${message.length}`)
    }
  })

  test('SIZE is the limit of the unstuffed message: at the limit it goes, one byte more is 552', () => {
    const message = bigMessage(4096)
    const wire = Buffer.concat([stuffed(message), Buffer.from('.\r\n')])
    for (const size of [0, 1]) {
      const at = received(wire, size, { maxMessageBytes: message.length })
      assert.ok(Buffer.isBuffer(at) && at.equals(message))
      assert.equal(
        received(wire, size, { maxMessageBytes: message.length - 1 }),
        '552 5.3.4 Message size exceeds fixed maximum message size\r\n',
      )
    }
  })
})

/** a MIME message of about `bytes` bytes: 8-bit headers, dot lines, bare CR/LF, a base64 attachment */
function bigMessage(bytes: number): Buffer {
  const head = Buffer.from(
    'From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\nSubject: Grüße, ünïcödé\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      'Content-Transfer-Encoding: 8bit\r\n\r\n.\r\n..\r\n.leading dot\r\nbare\nLF and bare\rCR\r\n.\r\n',
    'utf8',
  )
  const lines: string[] = []
  let size = head.length
  let seed = 1
  for (let i = 0; size < bytes; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    const chunk = Buffer.from(Buffer.alloc(57, seed & 0xff).map((b, j) => (b * 31 + j * seed) & 0xff))
    const line = i % 50 === 0 ? `.${chunk.toString('base64')}` : chunk.toString('base64')
    lines.push(line)
    size += line.length + 2
  }
  const tail = '\r\n--b--\r\n.\r\n'
  return Buffer.concat([
    head,
    Buffer.from('--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'),
    Buffer.from(lines.join('\r\n') + tail),
  ])
}

describe('SMTP submission: held input and misuse', () => {
  test(`input held while a message is submitted is bounded: more than ${MAX_QUEUED_BYTES} bytes closes with 421`, () => {
    for (const size of [0, 1]) {
      const s = createSubmissionSession(BASE)
      const first = render(s.feed(Buffer.from(`${TX}x\r\n.\r\n`)))
      assert.equal(first, TX_OK + SUBMIT('x\r\n'))
      const noops = Buffer.from('NOOP\r\n'.repeat(Math.floor(MAX_QUEUED_BYTES / 6)))
      const held = Buffer.concat([noops, Buffer.alloc(MAX_QUEUED_BYTES - noops.length, 0x41)])
      assert.equal(render(feedIn(s, held, size)), '', 'exactly the limit is held')
      assert.equal(
        render(s.feed(Buffer.from('B'))),
        '421 4.7.0 mx.local Too much input while a message is submitted, closing connection\r\n[close]',
      )
      assert.deepEqual(s.submitted(QUEUED), [], 'a closed session ignores the verdict')
      assert.deepEqual(s.feed(Buffer.from('NOOP\r\n')), [])
    }
  })

  test('held input is answered after the verdict, up to the limit', () => {
    const s = createSubmissionSession({ ...BASE, maxCommands: 100_000 })
    s.feed(Buffer.from(`${TX}x\r\n.\r\n`))
    const n = Math.floor(MAX_QUEUED_BYTES / 6)
    assert.equal(render(s.feed(Buffer.from('NOOP\r\n'.repeat(n)))), '')
    assert.equal(render(s.submitted(QUEUED)), `${QUEUED}\r\n${OK.repeat(n)}`)
  })

  test('a line that never ends is not buffered: it is answered 500 once it ends', () => {
    const s = createSubmissionSession({ ...BASE, maxLineBytes: 1024 })
    for (let i = 0; i < 1024; i++) assert.deepEqual(s.feed(Buffer.alloc(1024, 0x41)), [])
    assert.equal(render(s.feed(Buffer.from('\r\nNOOP\r\n'))), `500 5.5.2 Line too long\r\n${OK}`)
  })

  test('submitted() without a pending message, or with something that is not a reply, throws', () => {
    const s = createSubmissionSession(BASE)
    assert.throws(() => s.submitted(QUEUED), /no message pending/)
    s.feed(Buffer.from(`${TX}x\r\n.\r\n`))
    for (const bad of ['OK', '250 ok\r\nDATA', '', '600 no', '25 x']) {
      assert.throws(() => s.submitted(bad), /reply lines/, JSON.stringify(bad))
    }
    // control characters other than line ends are folded: no line is injected
    assert.equal(render(s.submitted('250 a\rb\0c')), '250 a b c\r\n')
  })

  test('options are checked', () => {
    const bad: Partial<SubmissionOptions>[] = [
      { hostname: 'mx local' },
      { hostname: 'mx\r\n250 x' },
      { hostname: '' },
      { maxMessageBytes: 0 },
      { maxMessageBytes: 1.5 },
      { maxRecipients: 0 },
      { maxLineBytes: 511 },
      { maxCommands: -1 },
    ]
    for (const o of bad) assert.throws(() => createSubmissionSession({ ...BASE, ...o }), RangeError, JSON.stringify(o))
    assert.doesNotThrow(() => createSubmissionSession({ ...BASE, maxLineBytes: 512, maxCommands: 1 }))
  })
})
