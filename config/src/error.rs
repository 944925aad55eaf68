//! Config errors that point at the spot: `file:line:column: what`, naming the field.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is in the message and deliberately not a `source`: anyhow's `{:#}` would
    /// print it a second time.
    #[error("{path}: cannot read config: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{origin}:{line}:{col}: {msg}")]
    Parse {
        origin: String,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{origin}{at}: field `{field}`: {msg}")]
    Invalid {
        origin: String,
        /// `:line:col` of the field's key when it appears once in the text, else empty.
        at: String,
        field: String,
        msg: String,
    },
}

impl ConfigError {
    /// A RON syntax or type error; `field` is the path of the value it is in, when known.
    pub(crate) fn from_ron(
        origin: &str,
        e: ron::error::SpannedError,
        field: Option<String>,
    ) -> Self {
        let msg = match field.filter(|f| !f.is_empty() && f != ".") {
            Some(f) => format!("field `{f}`: {}", e.code),
            None => e.code.to_string(),
        };
        ConfigError::Parse {
            origin: origin.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
            msg,
        }
    }

    /// A value that parsed but makes no sense. The position is that of the field's key in the text
    /// when the key's last path segment occurs exactly once; otherwise only the path is given.
    pub(crate) fn invalid(origin: &str, text: &str, field: String, msg: String) -> Self {
        let key = field.rsplit('.').next().unwrap_or(&field);
        let mut hits = Vec::new();
        for (ln, line) in text.lines().enumerate() {
            let mut search = 0;
            while let Some(i) = line[search..].find(key) {
                let col = search + i;
                let before_ok = col == 0
                    || !line.as_bytes()[col - 1].is_ascii_alphanumeric()
                        && line.as_bytes()[col - 1] != b'_';
                let after = line[col + key.len()..].trim_start();
                if before_ok && after.starts_with(':') {
                    hits.push((ln + 1, col + 1));
                }
                search = col + key.len();
            }
        }
        let at = if hits.len() == 1 {
            format!(":{}:{}", hits[0].0, hits[0].1)
        } else {
            String::new()
        };
        ConfigError::Invalid {
            origin: origin.to_string(),
            at,
            field,
            msg,
        }
    }
}
