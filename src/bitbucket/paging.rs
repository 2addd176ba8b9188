//! Bitbucket's paged lists: ask for `limit=1000`, follow `nextPageStart` until `isLastPage`.

use serde::{Deserialize, de::DeserializeOwned};

use super::{
    Client, Error,
    http::{Call, Response},
};

/// Page size asked for; servers cap it (normally at 1000) and echo what they used.
const PAGE_LIMIT: u64 = 1000;
/// Pages followed at most, so a server that never says "last page" cannot loop the client.
const MAX_PAGES: usize = 10_000;

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
        let mut items = Vec::new();
        let mut start = 0_u64;
        for _ in 0..MAX_PAGES {
            let request = call().query("start", start).query("limit", PAGE_LIMIT);
            let response = self.send(&request).await?;
            if response.status != reqwest::StatusCode::OK {
                return Err(on_error(&request, &response));
            }
            let page: Page<T> = self.parse(&request, &response)?;
            let fetched = page.values.len() as u64;
            items.extend(page.values);
            if page.is_last_page.unwrap_or(true) {
                return Ok(items);
            }
            // Follow nextPageStart; without one, trust the limit the server echoed.
            let next = page.next_page_start.or_else(|| page.limit.filter(|l| *l > 0).map(|l| start + l));
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
        Err(Error::UnexpectedResponse {
            status: 200,
            endpoint: call().endpoint.to_owned(),
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }
}
