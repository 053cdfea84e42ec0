// GET / and /static/...: the embedded web page (daemon/web_assets.hpp, docs/http.md "The page").

#include <httplib.h>

#include <string>

#include "daemon/web_assets.hpp"

namespace azflow::daemon {

void add_page_routes(httplib::Server& server) {
  for (std::size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset* asset = &kWebAssets[i];
    server.Get(asset->url, [asset](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-cache");
      res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
    });
  }
}

}  // namespace azflow::daemon
