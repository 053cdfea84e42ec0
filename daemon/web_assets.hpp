#pragma once
// The web page's files (web/), embedded into azflowd at build time by
// cmake/embed_web_assets.cmake (docs/http.md "The page"): nothing is read from disk or fetched
// from the network at run time.

#include <cstddef>

namespace httplib {
class Server;
}

namespace azflow::daemon {

/// One embedded file served at `url` ("/" or "/static/NAME").
struct WebAsset {
  const char* url;           ///< path of the request
  const char* content_type;  ///< e.g. "text/html; charset=utf-8"
  const unsigned char* data;
  std::size_t size;  ///< bytes
};

/// Every embedded file (generated source web_assets.cpp).
extern const WebAsset kWebAssets[];
extern const std::size_t kWebAssetCount;

/// Registers a GET route for each embedded file on `server` ("/" is the page).
void add_page_routes(httplib::Server& server);

}  // namespace azflow::daemon
