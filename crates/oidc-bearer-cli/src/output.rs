//! Text output ([`say!`]), and times as dates and as "expires in 12 min", for both text and JSON
//! output.

use oidc_bearer::Escaped;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in seconds since the epoch.
pub(crate) fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `secs` as an RFC 3339 date in UTC (`2025-01-31T12:00:00Z`), or the number when out of range.
pub(crate) fn date(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} (out of range)"))
}

/// A duration in the largest unit that keeps it readable: `45 s`, `12 min`, `3 h`, `4 d`.
pub(crate) fn span(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// How `secs` relates to now, for the claim `name`: "expires in 12 min", "expired 3 h ago",
/// "issued 5 min ago", "valid from 2 min ago".
pub(crate) fn relative(name: &str, secs: i64, now: i64) -> String {
    let delta = secs - now;
    let future = delta > 0;
    let ago = |verb: &str| format!("{verb} {} ago", span(delta));
    let ahead = |verb: &str| format!("{verb} in {}", span(delta));
    match (name, future) {
        ("exp", true) => ahead("expires"),
        ("exp", false) => ago("expired"),
        ("nbf", true) => ahead("valid"),
        ("nbf", false) => ago("valid since"),
        ("iat", true) => format!("issued {} in the future", span(delta)),
        ("iat", false) => ago("issued"),
        (_, true) => ahead("in"),
        (_, false) => ago("was"),
    }
}

/// A time claim for JSON output: seconds, date, and how it relates to now.
pub(crate) fn time_json(name: &str, secs: i64, now: i64) -> Value {
    json!({ "unix": secs, "date": date(secs), "relative": relative(name, secs, now) })
}

/// A time claim for text output: `2025-01-31T12:00:00Z (expires in 12 min)`.
pub(crate) fn time_text(name: &str, secs: i64, now: i64) -> String {
    format!("{} ({})", date(secs), relative(name, secs, now))
}

/// Prints `value` as pretty JSON on standard output, every character that [`say!`] escapes written
/// as a JSON escape (`\u009b`): serde_json escapes only the C0 controls, and the value is the same.
pub(crate) fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mut utf8 = [0; 4];
        let one = &*c.encode_utf8(&mut utf8);
        // Outside strings there are only printable ASCII, spaces and the pretty printer's newlines
        // (a newline in a string is already `\n`).
        if c == '\n' || Escaped(one).to_string() == one {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    println!("{out}");
}

/// `println!` for text output: the line with every character that could act on the terminal or
/// forge a line escaped ([`oidc_bearer::Escaped`], as the library's log excerpts are), since
/// tokens and issuers choose much of what is printed (names, `kid`s, documents). Every line of text
/// output goes through it. `\n` inside the line is escaped too: one call, one line.
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", oidc_bearer::Escaped(&format!($($arg)*)))
    };
}
pub(crate) use say;
