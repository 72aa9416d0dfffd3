//! Keyset pagination: a page token is the opaque, encoded key of the last row returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Which part of a page request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageField {
    Size,
    Token,
}

/// A refused page request: which part, and why (the service edge names the request field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PageInvalid {
    pub field: PageField,
    pub reason: &'static str,
}

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: i32 = 1000;

/// A page request, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub size: u64,
    /// The key after which the page starts.
    pub after: Option<String>,
}

impl Page {
    /// Validates `page_size` (0 means the default, at most 1000) and `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, PageInvalid> {
        if !(0..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(PageInvalid {
                field: PageField::Size,
                reason: "must be between 0 and 1000",
            });
        }
        let malformed = || PageInvalid { field: PageField::Token, reason: "malformed" };
        let size = if page_size == 0 { DEFAULT_PAGE_SIZE } else { page_size as u64 };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| malformed())?;
            let text = String::from_utf8(bytes).map_err(|_| malformed())?;
            let key = text.strip_prefix("k1:").ok_or_else(malformed)?;
            Some(key.to_owned())
        };
        Ok(Self { size, after })
    }

    /// The opaque token of a page starting after the row keyed `key`.
    pub(crate) fn token(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("k1:{key}"))
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub(crate) fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// The page out of rows fetched with [`Page::fetch_limit`], and the token of the next page
    /// (empty on the last one), keyed by `key` of the page's last row.
    pub(crate) fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, String) {
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let next = match rows.last() {
            Some(last) if more => Self::token(&key(last)),
            _ => String::new(),
        };
        (rows, next)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_input_says_which_part() {
        let page = Page::parse(2, "").unwrap();
        let (rows, token) = page.finish(vec!["a", "b", "c"], |r| (*r).to_owned());
        assert_eq!(rows, ["a", "b"]);
        assert_eq!(Page::parse(2, &token).unwrap().after.as_deref(), Some("b"));
        assert_eq!(page.finish(vec!["a", "b"], |r| (*r).to_owned()).1, "");
        assert_eq!(Page::parse(-1, "").unwrap_err().field, PageField::Size);
        assert_eq!(Page::parse(1001, "").unwrap_err().field, PageField::Size);
        assert_eq!(Page::parse(0, "!!").unwrap_err().field, PageField::Token);
        assert_eq!(Page::parse(0, "").unwrap().size, 50);
    }
}
