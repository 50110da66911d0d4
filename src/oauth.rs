//! Everything the daemon does with OAuth: reading JWT claims ([`jwt`]), refreshing tokens at
//! the token endpoint ([`refresh`], the `TokenRefresher` handed to the account actors), and
//! adding an account by logging in with the PKCE authorization-code flow ([`login`]), which yields
//! [`LoginTokens`] ([`tokens`]). The actors decide *when* to refresh and make the result durable; this module only speaks to the
//! auth server, exactly as Codex CLI does (docs/protocol.md §7–§8).

pub mod jwt;
pub mod login;
pub mod refresh;
pub mod tokens;

pub use refresh::HttpRefresher;
pub use tokens::LoginTokens;
