//! The GraphiQL playground, built from npm at pinned versions (`web/graphiql`) and embedded
//! in the binary, so it works without internet and loads nothing from anywhere else.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// The bundle's files, named by content hash (`assets/…`).
#[derive(rust_embed::Embed)]
#[folder = "assets/graphiql/assets/"]
struct Assets;

/// Vite's manifest of the bundle: which hashed files the page loads.
const MANIFEST: &str = include_str!("../assets/graphiql/.vite/manifest.json");

/// Only Quill's own origin: the page's scripts, styles, fonts, workers and requests.
/// Styles may be inline because the editor (Monaco) inserts them from script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; worker-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The playground page, with its security policy.
pub fn page() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| render(MANIFEST));
    let mut response = Html(page.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A file of the bundle; its name carries its hash, so it may be cached for good.
pub async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Assets::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type(&path))),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        file.data,
    )
        .into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The HTML page for the manifest's entry: its script and its style sheets.
fn render(manifest: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Chunk {
        file: String,
        #[serde(default)]
        css: Vec<String>,
        #[serde(default, rename = "isEntry")]
        is_entry: bool,
    }
    let chunks: std::collections::HashMap<String, Chunk> =
        serde_json::from_str(manifest).expect("the embedded manifest is Vite's JSON");
    let entry = chunks.values().find(|chunk| chunk.is_entry).expect("the bundle has an entry");
    let styles: String = entry
        .css
        .iter()
        .map(|css| format!("    <link rel=\"stylesheet\" href=\"/graphiql/{css}\">\n"))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\">\n    \
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n    \
         <title>Quill · GraphiQL</title>\n    <link rel=\"icon\" href=\"data:,\">\n{styles}    \
         <script type=\"module\" src=\"/graphiql/{}\"></script>\n  </head>\n  <body>\n    \
         <div id=\"graphiql\" style=\"height: 100vh\"></div>\n  </body>\n</html>\n",
        entry.file
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_bundle_entry_and_nothing_from_elsewhere() {
        let page = render(MANIFEST);

        assert!(page.contains("<script type=\"module\" src=\"/graphiql/assets/"), "{page}");
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/graphiql/assets/"), "{page}");
        assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    }

    #[test]
    fn every_file_the_manifest_names_is_embedded() {
        let names: Vec<String> = Assets::iter().map(|name| name.into_owned()).collect();
        for name in MANIFEST.split('"').filter(|s| s.starts_with("assets/")) {
            let name = name.trim_start_matches("assets/");
            assert!(names.iter().any(|n| n == name), "{name} is not embedded: {names:?}");
        }
    }
}
