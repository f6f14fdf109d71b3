/**
 * The text of the completion scripts for bash, zsh and fish, from what completion.ts learnt of the
 * commands. bash and zsh share one candidate function in plain sh (zsh runs it under `emulate -L
 * sh`); fish gets the same walk in its own language. Each walks the words before the cursor: the
 * command path (proxy password), flags and the values they take, then positionals.
 *
 * Owns: the scripts' text. Must not: run anything.
 */
import type { ArgKind } from './command.js'

/** What the scripts know about one command path ("" is mailkey itself). */
export interface PathSpec {
  path: string
  children: string[]
  flags: string[]
  /** the flags that take a value */
  valued: string[]
  args: ArgKind[]
}

export interface CompletionSpec {
  paths: PathSpec[]
  /** flag -> its values ('--provider' -> ['microsoft', ...]) */
  values: Map<string, readonly string[]>
  clients: string[]
}

/** every word the scripts embed goes inside single quotes: only these characters (a space joins a command path) */
function safe(word: string): string {
  if (!/^[A-Za-z0-9@._:/+ -]*$/.test(word)) throw new Error(`completion: a word that needs quoting: ${word}`)
  return word
}

const words = (list: readonly string[]): string => list.map(safe).join(' ')

/** a sh function that prints the words for its first argument ("case $1 in 'key') echo '...'") */
function shCase(name: string, pairs: [string, readonly string[]][], prologue: string): string {
  const arms = pairs.filter(([, v]) => v.length > 0).map(([k, v]) => `    '${safe(k)}') echo '${words(v)}' ;;`)
  return `${name}() {\n${prologue}  case $1 in\n${arms.join('\n')}\n  esac\n}\n`
}

function shData(spec: CompletionSpec, prologue: string): string {
  const by = (f: (p: PathSpec) => readonly string[]): [string, readonly string[]][] =>
    spec.paths.map((p) => [p.path, f(p)])
  return [
    shCase(
      '_mailkey_children',
      by((p) => p.children),
      prologue,
    ),
    shCase(
      '_mailkey_flags',
      by((p) => p.flags),
      prologue,
    ),
    shCase(
      '_mailkey_valued',
      by((p) => p.valued),
      prologue,
    ),
    shCase(
      '_mailkey_args',
      by((p) => p.args),
      prologue,
    ),
    shCase('_mailkey_values', [...spec.values], prologue),
    `_mailkey_clients() {\n  echo '${words(spec.clients)}'\n}\n`,
  ].join('\n')
}

/**
 * the walk, in sh that bash and zsh (emulate -L sh) both run; `P` is where zsh's prologue goes.
 * The command path is "cmdpath": zsh ties "path" to PATH, and a local one would hide every command.
 */
const SH_WALK = `_mailkey_has() {
P  case " $1 " in *" $2 "*) return 0 ;; esac
  return 1
}

# the accounts set up here: "mailkey list" prints addresses and states, never a token; stdin is
# /dev/null (no passphrase prompt), errors are dropped, and it may take at most 3 s
_mailkey_accounts() {
P  if command -v timeout >/dev/null 2>&1; then
    timeout 3 "$1" list </dev/null 2>/dev/null
  else
    "$1" list </dev/null 2>/dev/null
  fi | awk -F '\\t' 'NF > 2 && index($1, "@") > 0 { print $1 }'
}

# _mailkey_candidates PROGRAM CURRENT-WORD WORDS-BEFORE-IT...: what may come next ("@files": a file)
_mailkey_candidates() {
P  local prog="$1" cur="$2" cmdpath='' npos=0 pending='' helping='' w
  shift 2
  for w in "$@"; do
    if [ -n "$pending" ]; then pending=''; continue; fi
    case $w in
      --*=*) ;;
      -*) if _mailkey_has "$(_mailkey_valued "$cmdpath")" "$w"; then pending=$w; fi ;;
      *)
        if [ -z "$cmdpath$helping" ] && [ "$npos" -eq 0 ] && [ "$w" = help ]; then helping=1
        elif [ "$npos" -eq 0 ] && _mailkey_has "$(_mailkey_children "$cmdpath")" "$w"; then cmdpath="\${cmdpath:+$cmdpath }$w"
        else npos=$((npos + 1)); fi ;;
    esac
  done
  if [ -n "$pending" ]; then _mailkey_values "$pending"; return 0; fi
  if [ -n "$helping" ]; then [ "$npos" -eq 0 ] && _mailkey_children "$cmdpath"; return 0; fi
  case $cur in -*) _mailkey_flags "$cmdpath"; return 0 ;; esac
  [ "$npos" -eq 0 ] && _mailkey_children "$cmdpath"
  set -- $(_mailkey_args "$cmdpath")
  [ "$npos" -lt "$#" ] || return 0
  shift "$npos"
  case $1 in
    account) _mailkey_accounts "$prog" ;;
    client) _mailkey_clients ;;
    shell) echo 'bash zsh fish' ;;
  esac
  return 0
}
`

const HEADER = (shell: string): string =>
  `# mailkey completion for ${shell}, made by "mailkey completion ${shell}" from mailkey's own command table.\n`

export function bashScript(spec: CompletionSpec): string {
  return `${HEADER('bash')}
${shData(spec, '')}
${SH_WALK.replace(/^P/gm, '')}
_mailkey() {
  local IFS=$' \\t\\n' cur="\${COMP_WORDS[COMP_CWORD]}" found
  found=$(_mailkey_candidates "\${COMP_WORDS[0]}" "$cur" "\${COMP_WORDS[@]:1:COMP_CWORD-1}")
  if [ "$found" = '@files' ]; then
    local IFS=$'\\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    # literal matching, never compgen -W: it expands $(...) and backticks in the words, and an
    # address may hold both (a shared store's accounts are other people's input)
    local line w
    local -a ws
    COMPREPLY=()
    while IFS=$' \t' read -r -a ws; do
      for w in "\${ws[@]}"; do
        [[ $w == "$cur"* ]] && COMPREPLY+=("$(printf '%q' "$w")")
      done
    done <<<"$found"
  fi
}
complete -F _mailkey mailkey
`
}

export function zshScript(spec: CompletionSpec): string {
  const prologue = '  emulate -L sh\n'
  return `#compdef mailkey
${HEADER('zsh')}
${shData(spec, prologue)}
${SH_WALK.replace(/^P/gm, prologue)}
_mailkey() {
  local found
  found=$(_mailkey_candidates "\${words[1]}" "\${words[CURRENT]}" "\${(@)words[2,CURRENT-1]}")
  if [[ $found == @files ]]; then
    _files
  else
    local -a found_words
    found_words=(\${=found})
    compadd -a found_words
  fi
}

if [ "$funcstack[1]" = _mailkey ]; then
  _mailkey "$@"
else
  compdef _mailkey mailkey
fi
`
}

/** a fish function that prints, one a line, the words for its first argument */
function fishSwitch(name: string, pairs: [string, readonly string[]][]): string {
  const arms = pairs
    .filter(([, v]) => v.length > 0)
    .map(([k, v]) => `        case '${safe(k)}'\n            printf '%s\\n' ${words(v)}`)
  return `function ${name}\n    switch "$argv[1]"\n${arms.join('\n')}\n    end\nend\n`
}

const FISH_WALK = `function __mailkey_accounts
    # "mailkey list" prints addresses and states, never a token; no stdin, no errors, at most 3 s
    begin
        if command -q timeout
            timeout 3 $argv[1] list </dev/null 2>/dev/null
        else
            $argv[1] list </dev/null 2>/dev/null
        end
    end | awk -F '\\t' 'NF > 2 && index($1, "@") > 0 { print $1 }'
end

function __mailkey_candidates
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l prog $tokens[1]
    set -e tokens[1]
    set -l path ''
    set -l npos 0
    set -l pending ''
    set -l helping ''
    for w in $tokens
        if test -n "$pending"
            set pending ''
            continue
        end
        switch $w
            case '--*=*'
            case '-*'
                if contains -- $w (__mailkey_valued "$path")
                    set pending $w
                end
            case '*'
                if test -z "$path$helping" -a $npos -eq 0 -a "$w" = help
                    set helping 1
                else if test $npos -eq 0; and contains -- $w (__mailkey_children "$path")
                    set path (string trim -- "$path $w")
                else
                    set npos (math $npos + 1)
                end
        end
    end
    if test -n "$pending"
        set -l v (__mailkey_values $pending)
        if test "$v" = '@files'
            __fish_complete_path $cur
        else
            printf '%s\\n' $v
        end
        return
    end
    if test -n "$helping"
        test $npos -eq 0; and __mailkey_children "$path"
        return
    end
    if string match -q -- '-*' "$cur"
        __mailkey_flags "$path"
        return
    end
    test $npos -eq 0; and __mailkey_children "$path"
    set -l kinds (__mailkey_args "$path")
    test $npos -lt (count $kinds); or return
    switch $kinds[(math $npos + 1)]
        case account
            __mailkey_accounts $prog
        case client
            __mailkey_clients
        case shell
            printf '%s\\n' bash zsh fish
    end
end
`

export function fishScript(spec: CompletionSpec): string {
  const by = (f: (p: PathSpec) => readonly string[]): [string, readonly string[]][] =>
    spec.paths.map((p) => [p.path, f(p)])
  return `${HEADER('fish')}
${fishSwitch(
  '__mailkey_children',
  by((p) => p.children),
)}
${fishSwitch(
  '__mailkey_flags',
  by((p) => p.flags),
)}
${fishSwitch(
  '__mailkey_valued',
  by((p) => p.valued),
)}
${fishSwitch(
  '__mailkey_args',
  by((p) => p.args),
)}
${fishSwitch('__mailkey_values', [...spec.values])}
function __mailkey_clients
    printf '%s\\n' ${words(spec.clients)}
end

${FISH_WALK}
complete -c mailkey -f -a '(__mailkey_candidates)'
`
}
