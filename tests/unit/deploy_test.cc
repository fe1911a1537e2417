// The deployment files under deploy/ are checked the way their consumers read them:
// - Envoy's bootstraps (deploy/envoy/envoy.yaml and the one in the Kubernetes ConfigMap) are
//   turned from YAML into JSON as Envoy does and parsed as envoy.config.bootstrap.v3.Bootstrap by
//   protobuf's JSON parser against Envoy's own protos (third_party/envoy-protos), typed_config
//   Any fields resolved, unknown fields refused. So a typo in a field name fails here.
// - They must route the way semrouter's ext_proc service expects (processing mode, mode
//   override, one route per model on the model header, the ext_proc cluster on HTTP/2).
// - The Kubernetes manifests are well-formed YAML with the fields Kubernetes requires, and the
//   router config in the ConfigMap passes semrouter's own config loader.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <google/protobuf/compiler/importer.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "yaml_json.h"

namespace {

namespace fs = std::filesystem;
namespace gp = google::protobuf;
using nlohmann::json;

const fs::path kSource = SEMROUTER_SOURCE_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// YAML -> JSON as Envoy's loader does it (quoted scalars stay strings).
json to_json(const YAML::Node& n) {
  return semrouter::test_support::yaml_to_json(n);
}

class Errors : public gp::compiler::MultiFileErrorCollector {
public:
  void AddError(const std::string& file, int line, int col, const std::string& msg) override {
    text += file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg + "\n";
  }
  std::string text;
};

// Envoy's protos, loaded once.
class EnvoyProtos {
public:
  EnvoyProtos() : importer_(&tree_, &errors_) {
    const fs::path root = kSource / "third_party/envoy-protos";
    for (const char* dir : {"envoy-api", "xds", "protoc-gen-validate"})
      tree_.MapPath("", (root / dir).string());
    tree_.MapPath("", PROTOBUF_INCLUDE_DIR);
    for (const char* f : {"envoy/config/bootstrap/v3/bootstrap.proto",
                          "envoy/extensions/filters/network/http_connection_manager/v3/"
                          "http_connection_manager.proto",
                          "envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
                          "envoy/extensions/filters/http/router/v3/router.proto"}) {
      if (!importer_.Import(f))
        ok_ = false;
    }
    resolver_.reset(
        gp::util::NewTypeResolverForDescriptorPool("type.googleapis.com", importer_.pool()));
  }
  bool ok() const { return ok_; }
  const std::string& errors() const { return errors_.text; }

  // "" when `j` parses as a Bootstrap; else the parser's message.
  std::string parse_bootstrap(const json& j) {
    std::string binary;
    gp::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = gp::util::JsonToBinaryString(
        resolver_.get(), "type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap", j.dump(),
        &binary, options);
    return status.ok() ? "" : status.ToString();
  }

private:
  gp::compiler::DiskSourceTree tree_;
  Errors errors_;
  gp::compiler::Importer importer_;
  std::unique_ptr<gp::util::TypeResolver> resolver_;
  bool ok_ = true;
};

EnvoyProtos& protos() {
  static EnvoyProtos p;
  return p;
}

json envoy_yaml() {
  return to_json(YAML::LoadFile((kSource / "deploy/envoy/envoy.yaml").string()));
}

std::vector<YAML::Node> k8s_documents(const std::string& file) {
  return YAML::LoadAllFromFile((kSource / "deploy/kubernetes" / file).string());
}

// The Bootstrap held in deploy/kubernetes/envoy-configmap.yaml.
json k8s_envoy() {
  for (const auto& doc : k8s_documents("envoy-configmap.yaml")) {
    if (doc["kind"].as<std::string>() == "ConfigMap")
      return to_json(YAML::Load(doc["data"]["envoy.yaml"].as<std::string>()));
  }
  return nullptr;
}

const json* find_named(const json& list, const std::string& name) {
  for (const auto& item : list) {
    if (item.value("name", "") == name)
      return &item;
  }
  return nullptr;
}

// Checks what semrouter's ext_proc service relies on; returns the problems found.
std::vector<std::string> check_routing(const json& boot) {
  std::vector<std::string> problems;
  const json& listener = boot["static_resources"]["listeners"][0];
  const json& hcm = listener["filter_chains"][0]["filters"][0]["typed_config"];
  const json& filters = hcm["http_filters"];
  const json* ext = find_named(filters, "envoy.filters.http.ext_proc");
  if (!ext)
    return {"no envoy.filters.http.ext_proc filter"};
  if (filters.back().value("name", "") != "envoy.filters.http.router")
    problems.push_back("the router filter must come last");
  const json& xp = (*ext)["typed_config"];
  const json& mode = xp["processing_mode"];
  if (mode.value("request_body_mode", "") != "BUFFERED")
    problems.push_back("request_body_mode must be BUFFERED (the router rewrites whole bodies)");
  if (mode.value("response_header_mode", "") != "SEND")
    problems.push_back("response_header_mode must be SEND (x-semrouter-* headers, accounting)");
  if (!xp.value("allow_mode_override", false))
    problems.push_back("allow_mode_override must be true (SSE answers switch to STREAMED)");
  const std::string cluster = xp["grpc_service"]["envoy_grpc"].value("cluster_name", "");
  std::set<std::string> clusters;
  for (const auto& c : boot["static_resources"]["clusters"])
    clusters.insert(c.value("name", ""));
  if (!clusters.count(cluster))
    problems.push_back("the ext_proc cluster \"" + cluster + "\" is not defined");
  else if (!find_named(boot["static_resources"]["clusters"], cluster)
                ->contains("http2_protocol_options"))
    problems.push_back("the ext_proc cluster must speak HTTP/2 (gRPC)");
  // One route per model of the demo config, on the model header, to a defined cluster.
  auto cfg = semrouter::config::load_config_file((kSource / "config/default.yaml").string());
  if (!cfg)
    return {"config/default.yaml: " + cfg.error().message};
  std::set<std::string> routed;
  for (const auto& vh : hcm["route_config"]["virtual_hosts"]) {
    for (const auto& r : vh["routes"]) {
      if (r.contains("route") && !clusters.count(r["route"].value("cluster", "")))
        problems.push_back("route " + r.value("name", "?") + " names an undefined cluster");
      for (const auto& hm : r["match"].value("headers", json::array())) {
        if (hm.value("name", "") == (*cfg)->extproc.model_header)
          routed.insert(hm["string_match"].value("exact", ""));
      }
    }
  }
  for (const auto& m : (*cfg)->models) {
    if (!routed.count(m.name))
      problems.push_back("no route for model " + m.name);
  }
  return problems;
}

TEST(Deploy, EnvoyProtosLoad) {
  ASSERT_TRUE(protos().ok()) << protos().errors();
}

TEST(Deploy, EnvoyBootstrapParsesAgainstEnvoysProtos) {
  ASSERT_TRUE(protos().ok()) << protos().errors();
  EXPECT_EQ(protos().parse_bootstrap(envoy_yaml()), "");
  json k8s = k8s_envoy();
  ASSERT_FALSE(k8s.is_null());
  EXPECT_EQ(protos().parse_bootstrap(k8s), "");
}

TEST(Deploy, ATypoInAnyFieldFails) {
  ASSERT_TRUE(protos().ok()) << protos().errors();
  json boot = envoy_yaml();
  json bad = boot;
  bad["static_resources"]["listeners"][0]["per_connection_buffer_limit_byte"] = 1;
  EXPECT_NE(protos().parse_bootstrap(bad), "");
  // Inside the typed ext_proc config (an Any), too.
  bad = boot;
  json& filters = bad["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                     ["typed_config"]["http_filters"];
  filters[0]["typed_config"]["processing_mode"]["request_body_mod"] = "BUFFERED";
  EXPECT_NE(protos().parse_bootstrap(bad), "");
  bad = boot;
  bad["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
     ["http_filters"][0]["typed_config"]["processing_mode"]["request_body_mode"] = "BUFERED";
  EXPECT_NE(protos().parse_bootstrap(bad), "");
}

TEST(Deploy, EnvoyRoutesTheWayTheServiceExpects) {
  for (const json& boot : {envoy_yaml(), k8s_envoy()}) {
    auto problems = check_routing(boot);
    EXPECT_TRUE(problems.empty()) << problems.front();
  }
  // The check itself can fail.
  json bad = envoy_yaml();
  bad["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
     ["http_filters"][0]["typed_config"]["processing_mode"]["request_body_mode"] = "STREAMED";
  EXPECT_FALSE(check_routing(bad).empty());
}

std::string str(const YAML::Node& n) {
  return n && n.IsScalar() ? n.Scalar() : "";
}

TEST(Deploy, KubernetesManifestsHaveTheRequiredFields) {
  const fs::path dir = kSource / "deploy/kubernetes";
  auto kustomization = YAML::LoadFile((dir / "kustomization.yaml").string());
  ASSERT_TRUE(kustomization["resources"].IsSequence());
  std::set<std::string> kinds;
  std::map<std::string, YAML::Node> deployments, services, configmaps;
  for (const auto& r : kustomization["resources"]) {
    const std::string file = r.as<std::string>();
    ASSERT_TRUE(fs::exists(dir / file)) << file;
    for (const auto& doc : k8s_documents(file)) {
      SCOPED_TRACE(file);
      ASSERT_TRUE(doc.IsMap());
      const std::string kind = str(doc["kind"]);
      const std::string name = str(doc["metadata"]["name"]);
      EXPECT_FALSE(str(doc["apiVersion"]).empty());
      EXPECT_FALSE(kind.empty());
      EXPECT_FALSE(name.empty());
      kinds.insert(kind);
      if (kind == "Deployment")
        deployments[name] = doc;
      if (kind == "Service")
        services[name] = doc;
      if (kind == "ConfigMap")
        configmaps[name] = doc;
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"ConfigMap", "Deployment", "Service"}));
  ASSERT_TRUE(deployments.count("semrouter"));
  for (const auto& [name, d] : deployments) {
    SCOPED_TRACE(name);
    EXPECT_EQ(str(d["apiVersion"]), "apps/v1");
    const auto labels = d["spec"]["template"]["metadata"]["labels"];
    const auto match = d["spec"]["selector"]["matchLabels"];
    ASSERT_TRUE(match.IsMap() && match.size() > 0);
    for (const auto& kv : match)
      EXPECT_EQ(str(labels[kv.first.Scalar()]), kv.second.Scalar());
    const auto containers = d["spec"]["template"]["spec"]["containers"];
    ASSERT_TRUE(containers.IsSequence() && containers.size() > 0);
    for (const auto& c : containers) {
      EXPECT_FALSE(str(c["name"]).empty());
      EXPECT_FALSE(str(c["image"]).empty());
    }
  }
  // semrouter: several replicas, probes on the admin port's /ready and /health, resources.
  const auto sr = deployments["semrouter"];
  EXPECT_GE(sr["spec"]["replicas"].as<int>(), 2);
  const auto c = sr["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(str(c["readinessProbe"]["httpGet"]["path"]), "/ready");
  EXPECT_EQ(str(c["livenessProbe"]["httpGet"]["path"]), "/health");
  EXPECT_TRUE(c["resources"]["requests"]["cpu"].IsDefined());
  EXPECT_TRUE(c["resources"]["requests"]["memory"].IsDefined());
  bool extproc_mode = false;
  for (const auto& a : c["args"])
    extproc_mode = extproc_mode || a.Scalar() == "extproc";
  EXPECT_TRUE(extproc_mode);
  // Services select pods that exist.
  for (const auto& [name, s] : services) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(s["spec"]["ports"].IsSequence());
    bool selects = false;
    for (const auto& [dn, d] : deployments) {
      bool all = s["spec"]["selector"].IsMap();
      for (const auto& kv : s["spec"]["selector"])
        all = all && str(d["spec"]["template"]["metadata"]["labels"][kv.first.Scalar()]) ==
                         kv.second.Scalar();
      selects = selects || all;
    }
    EXPECT_TRUE(selects);
  }
  // The router config in the ConfigMap is one semrouter accepts, with an ext_proc listener.
  ASSERT_TRUE(configmaps.count("semrouter-config"));
  const std::string router_yaml = str(configmaps["semrouter-config"]["data"]["router.yaml"]);
  // The Deployment sets the admin token from a Secret.
  ::setenv("SEMROUTER_ADMIN_TOKEN", "deploy-test-token", 1);
  auto cfg = semrouter::config::parse_config(router_yaml);
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE((*cfg)->extproc.enabled);
}

} // namespace
