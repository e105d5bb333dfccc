/** Why a sign-in, a silent attempt or a token request did not succeed. */
export type PorticoErrorReason =
  /** No session at Portico (or no refresh token here): an interactive sign-in is needed. */
  | 'login_required'
  /** Portico needs the user (consent, a tenant to pick, a second factor). */
  | 'interaction_required'
  /** A silent attempt or a popup did not answer in time. */
  | 'timeout'
  /** Portico could not be reached, or answered something unreadable. */
  | 'network'
  /** The browser refused to open the window. */
  | 'popup_blocked'
  /** The user closed the window before signing in. */
  | 'popup_closed'
  /** Portico refused: no grant for that product or organization, or the user declined. */
  | 'access_denied'
  /** A newer session of this single-session product started in this browser. */
  | 'session_replaced'
  /** The callback URL holds no sign-in this browser started (or one that expired). */
  | 'invalid_callback'
  /** Anything else Portico answered (its OAuth error code is in `error`). */
  | 'server_error';

/** Every failure the SDK reports: a typed `reason`, and Portico's OAuth `error` when it gave one. */
export class PorticoError extends Error {
  readonly reason: PorticoErrorReason;
  readonly error?: string;

  constructor(reason: PorticoErrorReason, message: string, options: { error?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PorticoError';
    this.reason = reason;
    this.error = options.error;
  }
}

/** The reason an OAuth error code stands for. */
export function reasonOf(error: string): PorticoErrorReason {
  switch (error) {
    case 'login_required':
      return 'login_required';
    case 'interaction_required':
    case 'consent_required':
    case 'account_selection_required':
      return 'interaction_required';
    case 'access_denied':
      return 'access_denied';
    case 'invalid_grant':
      return 'login_required';
    default:
      return 'server_error';
  }
}
