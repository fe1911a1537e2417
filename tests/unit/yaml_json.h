// YAML -> JSON for tests, as Envoy and our case files read YAML: quoted scalars stay strings;
// plain ones may be booleans, null or numbers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace semrouter::test_support {

inline nlohmann::json yaml_to_json(const YAML::Node& n) {
  using nlohmann::json;
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n)
      o[kv.first.Scalar()] = yaml_to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& e : n)
      a.push_back(yaml_to_json(e));
    return a;
  }
  if (!n.IsDefined() || n.IsNull())
    return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!")
    return s;
  if (s == "true")
    return true;
  if (s == "false")
    return false;
  if (s == "null" || s == "~")
    return nullptr;
  try {
    size_t used = 0;
    long long i = std::stoll(s, &used);
    if (used == s.size())
      return i;
    double d = std::stod(s, &used);
    if (used == s.size())
      return d;
  } catch (...) {
  }
  return s;
}

} // namespace semrouter::test_support
