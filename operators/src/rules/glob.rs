//! Device name patterns: `*` and `?` globs.

/// Matches `name` against a pattern with `*` (any run) and `?` (any one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("dev-*", "dev-001"));
        assert!(glob_match("*", ""));
        assert!(glob_match("d?v-0*1", "dev-001"));
        assert!(!glob_match("dev-?", "dev-10"));
        assert!(glob_match("*-1*", "dev-10"));
        assert!(!glob_match("plant", "plant-a"));
    }
}
