// SPDX-License-Identifier: MIT
// Validation of the PUT /api/v1/memory/target body and the JSON shapes of the API types.
#include <gtest/gtest.h>

#include "vmm/api/api_json.hpp"

namespace vmm::api {
namespace {

TEST(TargetRequest, AcceptsTargetAlone)
{
    auto request = parse_target_request(R"({"target_mib": 768})");
    ASSERT_TRUE(request.has_value()) << request.error();
    EXPECT_EQ(request->target_mib, 768u);
    EXPECT_FALSE(request->timeout.has_value());
}

TEST(TargetRequest, AcceptsTargetWithTimeout)
{
    auto request = parse_target_request(R"({"timeout_ms": 2500, "target_mib": 2048})");
    ASSERT_TRUE(request.has_value()) << request.error();
    EXPECT_EQ(request->target_mib, 2048u);
    EXPECT_EQ(request->timeout, std::chrono::milliseconds(2500));
}

TEST(TargetRequest, RejectsBadJsonAndNonObjects)
{
    for (char const* body : { "", "{", "target_mib=5", "{\"target_mib\": 5,}", "\xff\xfe" })
        EXPECT_EQ(parse_target_request(body).error(), "request body is not valid JSON") << body;
    for (char const* body : { "[]", "5", "\"x\"", "null" })
        EXPECT_EQ(parse_target_request(body).error(), "request body must be a JSON object") << body;
}

TEST(TargetRequest, RejectsWrongTypesNamingTheField)
{
    for (char const* body : { R"({"target_mib": "512"})", R"({"target_mib": -1})", R"({"target_mib": 1.5})",
             R"({"target_mib": 1e3})", R"({"target_mib": true})", R"({"target_mib": null})",
             R"({"target_mib": 99999999999999999999999})" })
        EXPECT_EQ(parse_target_request(body).error(), "field 'target_mib' must be an unsigned integer") << body;
    EXPECT_EQ(parse_target_request(R"({"target_mib": 512, "timeout_ms": "1"})").error(),
        "field 'timeout_ms' must be an unsigned integer");
}

TEST(TargetRequest, RejectsUnknownAndMissingFields)
{
    EXPECT_EQ(parse_target_request(R"({"target_mib": 512, "amount_mib": 1})").error(), "unknown field 'amount_mib'");
    EXPECT_EQ(parse_target_request(R"({})").error(), "missing field 'target_mib'");
    EXPECT_EQ(parse_target_request(R"({"timeout_ms": 5})").error(), "missing field 'target_mib'");
    std::string long_key(500, 'k');
    auto error = parse_target_request("{\"" + long_key + "\": 1}").error();
    EXPECT_LT(error.size(), 100u) << "client text echoed in errors is truncated";
}

TEST(TargetRequest, CapsTimeout)
{
    EXPECT_TRUE(parse_target_request(R"({"target_mib": 1, "timeout_ms": 600000})").has_value());
    EXPECT_EQ(parse_target_request(R"({"target_mib": 1, "timeout_ms": 600001})").error(),
        "field 'timeout_ms' must be at most 600000");
}

TEST(ApiJson, MemoryInfoRendersNullsForAbsentParts)
{
    MemoryInfo info;
    info.boot_mib = 1024;
    auto json = to_json(info);
    EXPECT_EQ(json["boot_mib"], 1024);
    EXPECT_TRUE(json["guest_status"].is_null());
    EXPECT_TRUE(json["operation"].is_null());
    EXPECT_EQ(json["dm"]["connected"], false);
    EXPECT_TRUE(json["dm"]["protocol_version"].is_null());
    EXPECT_TRUE(json["host"].is_null());
}

TEST(ApiJson, HostMemoryIsInMiBRoundedDown)
{
    MemoryInfo info;
    info.host = HostMemory { 300 * 1024 * 1024 + 5, 1024 * 1024 - 1 };
    auto json = to_json(info);
    EXPECT_EQ(json["host"]["boot_ram_resident_mib"], 300);
    EXPECT_EQ(json["host"]["hot_add_resident_mib"], 0);
}

TEST(ApiJson, FaultBodyEscapesAndSurvivesInvalidUtf8)
{
    auto body = nlohmann::json::parse(fault_body("bad \"quote\" \xff"));
    EXPECT_TRUE(body["fault_message"].get<std::string>().starts_with("bad \"quote\""));
}

TEST(PolicyUpdate, ReadsEveryFieldAndNamesTheBadOne)
{
    auto update = parse_policy_update(R"({"mode": "auto", "min_mib": 256, "max_mib": 2048, "buffer_percent": 30,
        "weight": 70, "min_step_mib": 8, "min_interval_ms": 1000, "hysteresis_percent": 4, "shrink_delay_ms": 5000,
        "on_reboot_size": "last"})");
    ASSERT_TRUE(update.has_value()) << update.error();
    EXPECT_EQ(update->mode, "auto");
    EXPECT_EQ(update->min_mib, 256u);
    EXPECT_EQ(update->max_mib, 2048u);
    EXPECT_EQ(update->buffer_percent, 30u);
    EXPECT_EQ(update->weight, 70u);
    EXPECT_EQ(update->min_step_mib, 8u);
    EXPECT_EQ(update->min_interval_ms, 1000u);
    EXPECT_EQ(update->hysteresis_percent, 4u);
    EXPECT_EQ(update->shrink_delay_ms, 5000u);
    EXPECT_EQ(update->on_reboot_size, "last");
    EXPECT_FALSE(parse_policy_update(R"({"weight": 5})")->mode.has_value());
    EXPECT_EQ(parse_policy_update(R"({"mode": 1})").error(), "field 'mode' must be \"manual\" or \"auto\"");
    EXPECT_EQ(parse_policy_update(R"({"on_reboot_size": "first"})").error(),
        "field 'on_reboot_size' must be \"boot\" or \"last\"");
    EXPECT_EQ(parse_policy_update(R"({"min_mib": -1})").error(), "field 'min_mib' must be an unsigned integer");
    EXPECT_EQ(parse_policy_update(R"({"weight": 1.5})").error(), "field 'weight' must be an unsigned integer");
    EXPECT_EQ(parse_policy_update(R"({"mod": "auto"})").error(), "unknown field 'mod'");
    EXPECT_EQ(parse_policy_update("[]").error(), "request body must be a JSON object");
    EXPECT_EQ(parse_policy_update("{}").error(), "request body names no policy field");
}

TEST(ApiJson, GuestInfoNamesTheIntrinsicPairsAndSplitsAddresses)
{
    GuestHealth guest;
    guest.time_sync = GuestTimeSync { "ready", true, 7 };
    GuestInfo info;
    info.service = "ready";
    info.age_ms = 1500;
    info.intrinsic = { { "FullyQualifiedDomainName", "web-1" }, { "OSName", "Linux" }, { "OSVersion", "6.1.0" },
        { "NetworkAddressIPv4", "10.0.0.5;10.0.1.5" }, { "NetworkAddressIPv6", " fe80::1 ;" } };
    info.guest = { { "app", "ready" } };
    guest.info = info;
    auto out = to_json(guest);
    EXPECT_EQ(out["time_sync"], (nlohmann::json { { "service", "ready" }, { "synced", true }, { "samples", 7 } }));
    EXPECT_EQ(out["info"]["host_name"], "web-1");
    EXPECT_EQ(out["info"]["os_name"], "Linux");
    EXPECT_EQ(out["info"]["os_version"], "6.1.0");
    EXPECT_EQ(out["info"]["addresses"], (nlohmann::json { "10.0.0.5", "10.0.1.5", "fe80::1" }));
    EXPECT_EQ(out["info"]["age_ms"], 1500);
    EXPECT_EQ(out["info"]["guest"]["app"], "ready");
    EXPECT_EQ(out["info"]["intrinsic"].size(), 5u);
    GuestHealth bare;
    bare.info = GuestInfo {};
    auto empty = to_json(bare);
    EXPECT_TRUE(empty["time_sync"].is_null());
    EXPECT_TRUE(empty["info"]["host_name"].is_null());
    EXPECT_TRUE(empty["info"]["age_ms"].is_null());
    EXPECT_EQ(empty["info"]["addresses"], nlohmann::json::array());
    EXPECT_EQ(empty["info"]["service"], "closed");
}

} // namespace
} // namespace vmm::api

TEST(ShutdownRequest, EmptyBodyMeansDefaultsAndFieldsAreRead)
{
    auto empty = vmm::api::parse_shutdown_request("");
    ASSERT_TRUE(empty.has_value());
    EXPECT_FALSE(empty->timeout_ms.has_value());
    EXPECT_FALSE(empty->reboot);
    auto full = vmm::api::parse_shutdown_request(R"({"timeout_ms": 5000, "reboot": true})");
    ASSERT_TRUE(full.has_value());
    EXPECT_EQ(full->timeout_ms, 5000u);
    EXPECT_TRUE(full->reboot);
}

TEST(ShutdownRequest, RejectsBadBodiesNamingTheField)
{
    EXPECT_EQ(vmm::api::parse_shutdown_request("{").error(), "request body is not valid JSON");
    EXPECT_EQ(vmm::api::parse_shutdown_request("[]").error(), "request body must be a JSON object");
    EXPECT_EQ(vmm::api::parse_shutdown_request(R"({"reboot": "yes"})").error(), "field 'reboot' must be true or false");
    EXPECT_EQ(vmm::api::parse_shutdown_request(R"({"timeout_ms": 600001})").error(),
        "field 'timeout_ms' must be at most 600000");
    EXPECT_NE(vmm::api::parse_shutdown_request(R"({"timeout_ms": -1})").error().find("timeout_ms"), std::string::npos);
    EXPECT_EQ(vmm::api::parse_shutdown_request(R"({"force": true})").error(), "unknown field 'force'");
}
