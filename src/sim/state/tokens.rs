//! The token side of the simulated world: minting access/id/refresh tokens, checking bearer
//! tokens, single-use refresh rotation with reuse detection, and OAuth authorization codes.

use super::{
    AccessEntry, Auth, AuthCode, GrantError, Inner, RefreshEntry, Standing, TokenSet, World, bump,
    now_ms,
};
use crate::sim::jwt::{self, Subject};
use crate::sim::options::AccountSpec;
use crate::sim::quota::Ms;

impl World {
    /// Checks a bearer token.
    pub fn authenticate(&self, token: &str, now: Ms) -> Auth {
        let g = self.lock();
        let Some(entry) = g.access.get(token) else {
            return Auth::Unknown;
        };
        let Some(acct) = g.accounts.get(&entry.account) else {
            return Auth::Unknown;
        };
        match acct.standing {
            Standing::Banned => Auth::Banned(acct.id.clone()),
            Standing::Deactivated => Auth::Deactivated(acct.id.clone()),
            Standing::Active if now >= entry.expires_at => Auth::Expired(acct.id.clone()),
            Standing::Active => Auth::Ok(acct.id.clone()),
        }
    }

    /// Mints the first tokens of a new account.
    pub(super) fn first_tokens(&self, account: &str, now: Ms) -> TokenSet {
        issue(&mut self.lock(), account, now)
    }

    /// Exchanges a refresh token (single use) for a new token set.
    pub fn refresh(&self, refresh_token: &str, now: Ms) -> Result<TokenSet, GrantError> {
        let mut g = self.lock();
        let Some(entry) = g.refresh.get(refresh_token) else {
            return Err(GrantError::Invalid);
        };
        let account = entry.account.clone();
        if entry.used {
            bump(&mut g, Some(&account), |c| c.refresh_reused += 1);
            return Err(GrantError::Reused(account));
        }
        standing_ok(&g, &account)?;
        if let Some(e) = g.refresh.get_mut(refresh_token) {
            e.used = true;
        }
        bump(&mut g, Some(&account), |c| c.refreshes += 1);
        Ok(issue(&mut g, &account, now))
    }

    /// Registers an authorization code for an account (OAuth PKCE login). `login_hint`
    /// selects an account by email or id; otherwise a new account is created.
    pub fn authorize(
        &self,
        login_hint: Option<&str>,
        challenge: &str,
        redirect_uri: Option<&str>,
    ) -> String {
        let existing = login_hint.and_then(|h| {
            let g = self.lock();
            g.accounts
                .values()
                .find(|a| a.email == h || a.id == h)
                .map(|a| a.id.clone())
        });
        let account = match existing {
            Some(id) => id,
            None => {
                let email = login_hint.filter(|h| h.contains('@')).map(String::from);
                self.create_account(AccountSpec {
                    email,
                    ..AccountSpec::default()
                })
                .id
            }
        };
        let mut g = self.lock();
        let code = format!("code_sim_{}{}", g.rng.hex(), g.rng.hex());
        let entry = AuthCode {
            account,
            challenge: challenge.to_string(),
            redirect_uri: redirect_uri.map(String::from),
        };
        g.codes.insert(code.clone(), entry);
        code
    }

    /// Exchanges an authorization code (single use) after checking the PKCE verifier (S256)
    /// and the redirect URI.
    pub fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: Option<&str>,
        now: Ms,
    ) -> Result<TokenSet, GrantError> {
        let mut g = self.lock();
        let Some(entry) = g.codes.remove(code) else {
            return Err(GrantError::Invalid);
        };
        if pkce_challenge(verifier) != entry.challenge
            || (entry.redirect_uri.is_some() && entry.redirect_uri.as_deref() != redirect_uri)
        {
            return Err(GrantError::Mismatch);
        }
        standing_ok(&g, &entry.account)?;
        Ok(issue(&mut g, &entry.account, now))
    }

    /// Makes every access token of an account expired now.
    pub fn expire_access_tokens(&self, id: &str) -> bool {
        let mut g = self.lock();
        let now = now_ms();
        let mut found = g.accounts.contains_key(id);
        for e in g.access.values_mut().filter(|e| e.account == id) {
            e.expires_at = e.expires_at.min(now);
            found = true;
        }
        found
    }
}

/// Checks that an account may be issued tokens.
fn standing_ok(g: &Inner, account: &str) -> Result<(), GrantError> {
    match g.accounts.get(account).map(|a| a.standing) {
        None => Err(GrantError::Invalid),
        Some(Standing::Banned) => Err(GrantError::Banned(account.to_string())),
        Some(Standing::Deactivated) => Err(GrantError::Deactivated(account.to_string())),
        Some(Standing::Active) => Ok(()),
    }
}

/// Mints a new access/id/refresh token triple for an account and records them.
fn issue(g: &mut Inner, account: &str, now: Ms) -> TokenSet {
    let (owned, ttl) = match g.accounts.get(account) {
        Some(a) => (
            (
                a.id.clone(),
                a.user_id.clone(),
                a.email.clone(),
                a.plan.clone(),
            ),
            a.token_ttl_ms,
        ),
        None => (
            (
                account.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ),
            3_600_000,
        ),
    };
    let (id, user, email, plan) = &owned;
    let subject = Subject {
        account_id: id,
        user_id: user,
        email,
        plan,
    };
    let expires_at = now + ttl;
    let iat = now / 1000;
    let exp = (expires_at + 999) / 1000;
    let access_token = jwt::mint(&subject, iat, exp, &g.rng.hex());
    let id_token = jwt::mint(&subject, iat, iat + 3600 * 24 * 365, &g.rng.hex());
    let refresh_token = format!("rt_sim_{}{}", g.rng.hex(), g.rng.hex());
    g.access.insert(
        access_token.clone(),
        AccessEntry {
            account: account.to_string(),
            expires_at,
        },
    );
    g.refresh.insert(
        refresh_token.clone(),
        RefreshEntry {
            account: account.to_string(),
            used: false,
        },
    );
    TokenSet {
        access_token,
        refresh_token,
        id_token,
        account_id: account.to_string(),
    }
}

/// `BASE64URL(SHA256(verifier))` — the S256 code challenge of RFC 7636.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}
