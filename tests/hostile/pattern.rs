//! Expected replies written as a line of code characters: `cccccc ha` is six continues,
//! then an added header and accept. Spaces are for reading only. A character stands for that
//! reply code, `.` for any; a quantifier may follow: `*` (any number), `+` (at least one),
//! `{N}` (exactly N). `c{1000} t .*`: a thousand continues, tempfail, anything after.

use std::fmt::Write;

/// One character class and how often it repeats.
struct Token {
    any: bool,
    code: char,
    min: usize,
    max: usize,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().filter(|c| !c.is_whitespace()).collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&code) = chars.get(i) {
        i += 1;
        let (min, max) = match chars.get(i) {
            Some('*') => {
                i += 1;
                (0, usize::MAX)
            }
            Some('+') => {
                i += 1;
                (1, usize::MAX)
            }
            Some('{') => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == '}')
                    .expect("`{N}` is closed");
                let count: String = chars[i + 1..i + close].iter().collect();
                let count = count.parse().expect("`{N}` holds a number");
                i += close + 1;
                (count, count)
            }
            _ => (1, 1),
        };
        tokens.push(Token {
            any: code == '.',
            code,
            min,
            max,
        });
    }
    tokens
}

/// Whether `replies` (code characters) are what `pattern` describes.
pub(crate) fn matches(pattern: &str, replies: &str) -> bool {
    let text: Vec<char> = replies.chars().collect();
    // The positions in `text` that the tokens so far can end at.
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in tokens(pattern) {
        let mut next = vec![false; text.len() + 1];
        for start in (0..=text.len()).filter(|&p| reach[p]) {
            let mut count = 0;
            let mut at = start;
            loop {
                if count >= token.min {
                    next[at] = true;
                }
                if count == token.max {
                    break;
                }
                match text.get(at) {
                    Some(&c) if token.any || c == token.code => {
                        count += 1;
                        at += 1;
                    }
                    _ => break,
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

/// How many replies `pattern` stands for, when that is fixed (no `*`, `+`).
pub(crate) fn fixed_len(pattern: &str) -> Option<usize> {
    tokens(pattern)
        .iter()
        .map(|t| (t.min == t.max).then_some(t.min))
        .sum()
}

/// `replies` shortened for a message: long runs of one code written as `c{N}`.
pub(crate) fn summary(replies: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = replies.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        if run > 3 {
            let _ = write!(out, "{c}{{{run}}}");
        } else {
            out.extend(std::iter::repeat_n(c, run));
        }
        i += run;
    }
    out
}

#[test]
fn patterns_match_as_documented() {
    assert!(matches(
        "cccccc ha",
        "cccccchha".replacen("hh", "h", 1).as_str()
    ));
    assert!(matches("cc ha", "ccha"));
    assert!(!matches("cc ha", "cchha"));
    assert!(matches("c{3} t .*", "ccct"));
    assert!(matches("c{3} t .*", "ccctccc"));
    assert!(!matches("c{3} t .*", "cct"));
    assert!(matches("p* a", "a"));
    assert!(matches("p+ a", "ppa"));
    assert!(!matches("p+ a", "a"));
    assert!(matches("", ""));
    assert!(!matches("", "c"));
    assert_eq!(fixed_len("c{3} ha"), Some(5));
    assert_eq!(fixed_len("c* a"), None);
    assert_eq!(summary("ccccccha"), "c{6}ha");
}
