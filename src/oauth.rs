//! Everything the daemon does with OAuth: refreshing tokens at the token endpoint ([`refresh`],
//! the `TokenRefresher` handed to the account actors), and adding an account by logging in with
//! the PKCE authorization-code flow ([`login`]), which yields [`LoginTokens`] ([`tokens`]). JWT
//! claims are read by [`rotor_actors::jwt`], the one reader the pool and the daemon share. The
//! actors decide *when* to refresh and make the result durable; this module only speaks to the
//! auth server, exactly as Codex CLI does (docs/protocol.md §7–§8).

pub mod login;
pub mod refresh;
pub mod tokens;

pub use refresh::HttpRefresher;
pub use tokens::LoginTokens;
