// HTML of the lab authorization server's pages. No external resources at all (oidc-provider's
// default pages @import Google Fonts). Every page has a `<main id="lab-...">` marker that the
// scripted HTTP driver and the Chromium driver use to recognise it; forms have stable ids.

export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;background:#f4f4f4;margin:2rem}',
  'main{max-width:26rem;margin:0 auto;background:#fff;padding:1rem 2rem 2rem;border-radius:4px}',
  'input[type=text],input[type=email],input[type=password]{display:block;width:100%;box-sizing:border-box;',
  'margin:.3rem 0 1rem;padding:.5rem;font-size:1rem}',
  'button{padding:.5rem 1rem;font-size:1rem;margin-right:.5rem}code{font-size:1.5rem}',
  '.error{color:#b00}ul{padding-left:1.2rem}li{word-break:break-all}',
].join('')

export function layout(id: string, title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main id="${escapeHtml(id)}">
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>
`
}

export function loginPage(uid: string, clientId: string, loginHint: string, error?: string): string {
  const base = `/interaction/${encodeURIComponent(uid)}`
  return layout(
    'lab-login',
    'Sign in',
    `
<p>to continue to <strong>${escapeHtml(clientId)}</strong></p>
${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form id="login" method="post" action="${base}/login" autocomplete="off">
<label>Email <input type="email" name="login" value="${escapeHtml(loginHint)}" required autofocus></label>
<label>Password <input type="password" name="password" value=""></label>
<button type="submit">Sign in</button>
</form>
<form id="deny" method="post" action="${base}/abort">
<button type="submit">Cancel</button>
</form>`,
  )
}

export function consentPage(
  uid: string,
  clientId: string,
  accountId: string,
  scopes: string[],
  resources: Record<string, string[]>,
): string {
  const base = `/interaction/${encodeURIComponent(uid)}`
  const items = [
    ...scopes.map((s) => `<li>${escapeHtml(s)}</li>`),
    ...Object.entries(resources).flatMap(([resource, list]) =>
      list.map((s) => `<li>${escapeHtml(s)} <small>(${escapeHtml(resource)})</small></li>`),
    ),
  ]
  return layout(
    'lab-consent',
    'Permissions requested',
    `
<p><strong>${escapeHtml(clientId)}</strong> wants to access the account
<strong>${escapeHtml(accountId)}</strong>:</p>
<ul>${items.join('')}</ul>
<form id="consent" method="post" action="${base}/confirm">
<button type="submit" autofocus>Accept</button>
</form>
<form id="deny" method="post" action="${base}/abort">
<button type="submit">Deny</button>
</form>`,
  )
}

export function errorPage(out: Record<string, unknown>): string {
  const rows = Object.entries(out)
    .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`)
    .join('\n')
  return layout('lab-error', 'Something went wrong', rows)
}

export function deviceInputPage(form: string, errorName: string | undefined, isUserCodeError: boolean): string {
  let message = '<p>Enter the code displayed on your device</p>'
  let id = 'lab-device-input'
  if (errorName === 'AbortedError') {
    message = '<p class="error">The sign-in request was interrupted</p>'
    id = 'lab-device-aborted'
  } else if (isUserCodeError || errorName === 'NoCodeError') {
    message = '<p class="error">The code you entered is incorrect. Try again</p>'
    id = 'lab-device-bad-code'
  } else if (errorName) {
    message = '<p class="error">There was an error processing your request</p>'
    id = 'lab-device-error'
  }
  return layout(
    id,
    'Device sign-in',
    `${message}
${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`,
  )
}

export function deviceConfirmPage(form: string, clientId: string, userCode: string): string {
  return layout(
    'lab-device-confirm',
    'Confirm device',
    `
<p><strong>${escapeHtml(clientId)}</strong> wants to sign in. The device should show this code:</p>
<p><code id="user-code">${escapeHtml(userCode)}</code></p>
${form}
<button type="submit" form="op.deviceConfirmForm" autofocus>Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`,
  )
}

export function deviceSuccessPage(clientId: string): string {
  return layout(
    'lab-device-success',
    'Sign-in complete',
    `<p>Your sign-in with <strong>${escapeHtml(clientId)}</strong> was successful. ` + 'You can close this page.</p>',
  )
}

export function logoutPage(form: string, host: string): string {
  return layout(
    'lab-logout',
    'Sign out',
    `<p>Sign out from ${escapeHtml(host)}?</p>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
  )
}

export function logoutSuccessPage(): string {
  return layout('lab-logout-success', 'Signed out', '<p>You are signed out.</p>')
}
