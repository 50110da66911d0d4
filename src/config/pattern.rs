//! Glob patterns for model names (`claude-*`, `gpt-5.?`), used by model aliases and by the
//! models a client key may use. `*` matches any run of characters, `?` exactly one; everything
//! else matches itself. Small on purpose: model names are short and patterns few.

/// True when `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    // It runs on every request (a key's allowed models): ASCII names, the common case, are
    // matched byte by byte without allocating; anything else char by char.
    if pattern.is_ascii() && text.is_ascii() {
        glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        glob(&p, &t, '*', '?')
    }
}

/// Classic greedy matcher with one backtrack point (the last `*`): linear for these inputs.
fn glob<T: Copy + PartialEq>(p: &[T], t: &[T], star_sym: T, any: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_sym {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_sym)
}

/// How specific a pattern is: the number of literal characters. Among several matching
/// patterns the most specific wins (`claude-opus-*` beats `claude-*`).
pub fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| *c != '*' && *c != '?').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("claude-*", "claude-sonnet-4"));
        assert!(matches("*", ""));
        assert!(matches("gpt-5.?", "gpt-5.5"));
        assert!(!matches("gpt-5.?", "gpt-5.55"));
        assert!(matches("*-mini", "gpt-5.4-mini"));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(!matches("a*b*c", "aXXbYYb"));
        assert!(!matches("claude-*", "gpt-5.5"));
        assert!(matches("gpt-5.5", "gpt-5.5"));
        // Non-ASCII: `?` is one character, not one byte.
        assert!(matches("modèle-?", "modèle-é"));
        assert!(!matches("modèle-?", "modele-é"));
        assert!(!matches("gpt-5.5", "gpt-5.5x"));
        assert!(specificity("claude-opus-*") > specificity("claude-*"));
    }
}
