//! The management UI: static files from `ui/` at the repository root, embedded at compile
//! time so the binary serves them with no Node toolchain on the user's machine. Anything that
//! is not an API or health route falls through to here; unknown paths get `index.html` (the UI
//! routes with `#/...`, so this only matters for a mistyped URL).

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

macro_rules! asset {
    ($path:literal, $type:literal) => {
        (
            $path,
            $type,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/", $path)) as &[u8],
        )
    };
}

/// Every file the UI needs: (path under `ui/`, content type, bytes).
static ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("js/app.js", "text/javascript; charset=utf-8"),
    asset!("js/api.js", "text/javascript; charset=utf-8"),
    asset!("js/charts.js", "text/javascript; charset=utf-8"),
    asset!("js/dom.js", "text/javascript; charset=utf-8"),
    asset!("js/overview.js", "text/javascript; charset=utf-8"),
    asset!("js/lists.js", "text/javascript; charset=utf-8"),
    asset!("js/queue.js", "text/javascript; charset=utf-8"),
    asset!("js/exchange.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, t, b)| (*t, *b))
}

/// For UI development: with `OTTERMQ_UI_DIR` set, the same files are read from that
/// directory on each request (only names in `ASSETS`, so nothing else on disk is reachable).
fn from_dev_dir(path: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("OTTERMQ_UI_DIR")?;
    std::fs::read(std::path::Path::new(&dir).join(path)).ok()
}

/// Serves a UI file, `index.html` for `/` and for paths that name no file.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return crate::error::ApiError::not_found("no such endpoint").into_response();
    }
    let (found, path) = match find(path) {
        Some(_) => (true, path),
        None => (false, "index.html"),
    };
    let (content_type, embedded) = find(path).unwrap_or(("text/plain", b"" as &[u8]));
    let body: axum::body::Body = match from_dev_dir(path) {
        Some(b) => b.into(),
        None => embedded.into(),
    };
    // index.html is small and must pick up a new build at once; other assets may be cached
    // briefly (they change only with the binary).
    let cache = if found && path != "index.html" && !path.is_empty() {
        "public, max-age=300"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_non_empty_and_index_exists() {
        assert!(find("index.html").is_some());
        for (p, _, b) in ASSETS {
            assert!(!b.is_empty(), "{p} is empty");
        }
    }
}
