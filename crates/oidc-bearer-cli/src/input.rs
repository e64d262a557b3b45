//! Reading the token: from a file or standard input, never from the command line.

use std::io::Read;
use std::path::Path;

use crate::UsageError;

/// The most read from a file or standard input: far above any token (the verifier's own cap is
/// 8 KiB), so that pointing the command at a large file costs nothing.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// The token in `path` (`-`: standard input), without surrounding whitespace or a `Bearer ` prefix
/// (so that a pasted `Authorization` value works too).
pub(crate) fn read_token(path: &Path) -> Result<String, UsageError> {
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    read.map_err(|e| UsageError(format!("cannot read the token: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(UsageError(format!(
            "the input is larger than {MAX_INPUT_BYTES} bytes: not a token"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError("the input is not UTF-8 text: not a token".into()))?;
    let mut token = text.trim();
    for prefix in ["Authorization:", "Bearer ", "bearer "] {
        if let Some(rest) = token.strip_prefix(prefix) {
            token = rest.trim();
        }
    }
    if token.is_empty() {
        let from = if path.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            path.display().to_string()
        };
        return Err(UsageError(format!(
            "no token in {from} (give a file, or pipe the token in: `oidc-bearer inspect < token`)"
        )));
    }
    Ok(token.to_owned())
}
