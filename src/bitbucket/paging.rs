//! Bitbucket's paged lists: ask for `limit=1000`, follow `nextPageStart` until `isLastPage`,
//! within bounds on pages, items, bytes and time, so that no server (one that never sends the
//! last page, say) can make the client keep more than a bounded amount or list forever.

use std::time::Duration;

use serde::{Deserialize, de::DeserializeOwned};

use super::{
    Client, Error,
    http::{Call, Response, bytes},
};

/// Page size asked for; servers cap it (normally at 1000, some at 25) and echo what they used.
const PAGE_LIMIT: u64 = 1000;
/// Items one list may hold: a project of tens of thousands of repositories still fits.
pub(crate) const MAX_ITEMS: usize = 50_000;
/// Pages one list may take: [`MAX_ITEMS`] at the 25 a server may cap a page at (bitbucket-api.md
/// §11), twice over.
pub(crate) const MAX_PAGES: usize = 2 * MAX_ITEMS / 25;
/// Bytes all pages of one list may weigh together: [`MAX_ITEMS`] at about 1.3 KiB each, more
/// than a real repository weighs. It also bounds what a list keeps in memory.
pub(crate) const MAX_LISTING_BYTES: usize = 64 * 1024 * 1024;
/// Time one whole list may take: [`MAX_ITEMS`] in pages of 25 at Data Center's default rate of
/// 5 requests a second take under 7 minutes.
pub(crate) const MAX_LISTING_TIME: Duration = Duration::from_secs(15 * 60);

/// What to do about a list longer than the bounds.
const LIST_ADVICE: &str = "check that the URL leads to Bitbucket itself, and ask its administrators whether its paging \
                           works (a list that never reaches its last page)";
/// What to do about a list slower than the bound.
const TIME_ADVICE: &str = "check Bitbucket's health and the network in between; a higher rateLimit lets a long list \
                           finish sooner";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(default)]
    is_last_page: Option<bool>,
    #[serde(default)]
    next_page_start: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

impl Client {
    /// Every item of a paged list. `call` builds the request for one page (paging parameters are
    /// added here); `on_error` maps a response that is not 200.
    pub(crate) async fn get_all_pages<T: DeserializeOwned>(
        &self,
        call: impl Fn() -> Call,
        on_error: impl Fn(&Call, &Response) -> Error,
    ) -> Result<Vec<T>, Error> {
        let limit = self.inner.limits.listing_time;
        match tokio::time::timeout(limit, self.read_pages(&call, on_error)).await {
            Ok(result) => result,
            Err(_) => Err(Error::ResponseTooLarge {
                endpoint: call().endpoint.to_owned(),
                bound: format!("the list took longer than {} in all", duration(limit)),
                advice: TIME_ADVICE,
            }),
        }
    }

    async fn read_pages<T: DeserializeOwned>(
        &self,
        call: &impl Fn() -> Call,
        on_error: impl Fn(&Call, &Response) -> Error,
    ) -> Result<Vec<T>, Error> {
        let limits = self.inner.limits;
        let over = |request: &Call, bound: String| Error::ResponseTooLarge {
            endpoint: request.endpoint.to_owned(),
            bound,
            advice: LIST_ADVICE,
        };
        let mut items = Vec::new();
        let mut start = 0_u64;
        let mut read = 0_usize;
        for _ in 0..limits.pages {
            let request = call().query("start", start).query("limit", PAGE_LIMIT);
            let response = self.send(&request).await?;
            if response.status != reqwest::StatusCode::OK {
                return Err(on_error(&request, &response));
            }
            read = read.saturating_add(response.body.len());
            if read > limits.listing_bytes {
                return Err(over(&request, format!("more than {} in one list", bytes(limits.listing_bytes))));
            }
            let page: Page<T> = self.parse(&request, &response)?;
            drop(response);
            let fetched = page.values.len();
            if items.len().saturating_add(fetched) > limits.items {
                return Err(over(&request, format!("more than {} items in one list", limits.items)));
            }
            items.extend(page.values);
            if page.is_last_page.unwrap_or(true) {
                return Ok(items);
            }
            // Follow nextPageStart; without one, trust the limit the server echoed.
            let next = page.next_page_start.or_else(|| page.limit.filter(|l| *l > 0).map(|l| start.saturating_add(l)));
            match next {
                Some(next) if next > start && fetched > 0 => start = next,
                _ => {
                    return Err(Error::UnexpectedResponse {
                        status: 200,
                        endpoint: request.endpoint.to_owned(),
                        reason: "a page that is not the last does not say where the next one starts".into(),
                    });
                }
            }
        }
        Err(over(&call(), format!("more than {} pages in one list", limits.pages)))
    }
}

/// A duration as people read it: `15 minutes`, `90 s`.
fn duration(time: Duration) -> String {
    let seconds = time.as_secs();
    if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{} minutes", seconds / 60)
    } else {
        format!("{:.1} s", time.as_secs_f64())
    }
}
