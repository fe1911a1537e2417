// The dashboard's static files (ui/ and the vendored uPlot), compiled into the binary at build
// time by embed_assets.cmake: the admin port serves them without touching the disk or the
// network.
#pragma once

#include <span>
#include <string_view>

namespace semrouter::dashboard {

struct Asset {
  std::string_view path;         // relative to ui/, e.g. "app.js"; vendored files under "vendor/"
  std::string_view content_type; // from the extension
  std::string_view data;
};

// Every embedded file.
std::span<const Asset> assets();
// A hash of every file's path and bytes: the assets' URLs carry it, so a browser may cache them
// for good and still gets new ones after an upgrade.
std::string_view assets_version();

// The asset at `path`, or nullptr.
const Asset* find_asset(std::string_view path);

} // namespace semrouter::dashboard
