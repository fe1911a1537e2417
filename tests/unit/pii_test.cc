#include "signals/pii.h"

#include <limits>

#include <gtest/gtest.h>

namespace semrouter::signals {
namespace {

// "type=text" for each entity find_pii reports, in order.
std::vector<std::string> found(std::string_view text) {
  std::vector<std::string> out;
  for (const PiiEntity& e : find_pii(text))
    out.push_back(e.type + "=" + std::string(text.substr(e.begin, e.end - e.begin)));
  return out;
}

using Found = std::vector<std::string>;

PiiEntity entity(std::string type, size_t begin, size_t end, double score, std::string source) {
  PiiEntity e;
  e.type = std::move(type);
  e.begin = begin;
  e.end = end;
  e.score = score;
  e.source = std::move(source);
  return e;
}

TEST(Pii, PatternTypesInFixedOrder) {
  EXPECT_EQ(pattern_pii_types(), (std::vector<std::string>{"email", "phone", "credit_card",
                                                           "us_ssn", "ip_address", "iban"}));
}

TEST(Pii, EmailSpanStopsAtSurroundingPunctuation) {
  std::string_view text = "Contact john.doe+tag@mail.example.com.";
  auto e = find_pii(text);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, "email");
  EXPECT_EQ(e[0].begin, 8u);
  EXPECT_EQ(e[0].end, 37u); // the sentence's period is not part of it
  EXPECT_EQ(e[0].score, 1.0);
  EXPECT_EQ(e[0].source, "pattern");

  EXPECT_EQ(found("(bob@x.org)"), Found{"email=bob@x.org"});
  EXPECT_EQ(found("first.last@sub-domain.example.co.uk, thanks"),
            Found{"email=first.last@sub-domain.example.co.uk"});
  EXPECT_EQ(found("see...bob@x.org"), Found{"email=bob@x.org"});
  EXPECT_EQ(found("bob@x.org- done"), Found{"email=bob@x.org"});
  EXPECT_EQ(found("a@b.co,c@d.org"), (Found{"email=a@b.co", "email=c@d.org"}));
}

TEST(Pii, EmailNegatives) {
  EXPECT_TRUE(found("@user said hi").empty());
  EXPECT_TRUE(found("user@localhost").empty()); // no TLD
  EXPECT_TRUE(found("a@b.c").empty());          // one-letter TLD
  EXPECT_TRUE(found("a@b.com2").empty());       // TLD is letters only
  EXPECT_TRUE(found("a@-b.com").empty());
  EXPECT_TRUE(found("bob.@x.org").empty());
  EXPECT_TRUE(found("x@").empty());
}

TEST(Pii, NorthAmericanPhones) {
  EXPECT_EQ(found("call 555-123-4567 now"), Found{"phone=555-123-4567"});
  EXPECT_EQ(found("(555) 123-4567"), Found{"phone=(555) 123-4567"});
  EXPECT_EQ(found("(555)123-4567"), Found{"phone=(555)123-4567"});
  EXPECT_EQ(found("555.123.4567."), Found{"phone=555.123.4567"});
  EXPECT_EQ(found("555 123 4567"), Found{"phone=555 123 4567"});
  EXPECT_EQ(found("+1 (555) 123-4567"), Found{"phone=+1 (555) 123-4567"});
  EXPECT_EQ(found("+1-555-123-4567"), Found{"phone=+1-555-123-4567"});
  EXPECT_EQ(found("1-800-555-1234"), Found{"phone=1-800-555-1234"});
  auto e = find_pii("call 555-123-4567");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].begin, 5u);
  EXPECT_EQ(e[0].end, 17u);
  EXPECT_EQ(e[0].score, kPhoneScore);
}

TEST(Pii, InternationalPhones) {
  EXPECT_EQ(found("ring +44 20 7946 0958."), Found{"phone=+44 20 7946 0958"});
  EXPECT_EQ(found("+49 30 1234567"), Found{"phone=+49 30 1234567"});
  EXPECT_EQ(found("+49-30-1234567"), Found{"phone=+49-30-1234567"});
  EXPECT_EQ(found("+15551234567"), Found{"phone=+15551234567"});
  EXPECT_EQ(found("+44 (0)20 7946 0958 (home)"), Found{"phone=+44 (0)20 7946 0958"});
}

TEST(Pii, PhoneNegatives) {
  EXPECT_TRUE(found("order 5551234567 shipped").empty()); // no separators, no '+'
  EXPECT_TRUE(found("on 2024-01-15 we met").empty());
  EXPECT_TRUE(found("version 1.2.3").empty());
  EXPECT_TRUE(found("555-123-4567-89").empty()); // part of a longer number
  EXPECT_TRUE(found("x555-123-4567").empty());
  EXPECT_TRUE(found("555-123.4567").empty());               // mixed separators
  EXPECT_TRUE(found("+12 345").empty());                    // too few digits
  EXPECT_TRUE(found("+44 20 7946 0958 1234 5678").empty()); // too many digits
  EXPECT_TRUE(found("a+44 20 7946 0958").empty());
  EXPECT_TRUE(found("+0 20 7946 0958").empty());
}

TEST(Pii, CreditCards) {
  EXPECT_EQ(found("card 4111 1111 1111 1111 ok"), Found{"credit_card=4111 1111 1111 1111"});
  EXPECT_EQ(found("4111-1111-1111-1111"), Found{"credit_card=4111-1111-1111-1111"});
  EXPECT_EQ(found("4111111111111111."), Found{"credit_card=4111111111111111"});
  EXPECT_EQ(found("amex 3782 822463 10005"), Found{"credit_card=3782 822463 10005"});
  EXPECT_EQ(found("378282246310005"), Found{"credit_card=378282246310005"});
  EXPECT_EQ(found("4111 1111 1111 1111 5 times"), Found{"credit_card=4111 1111 1111 1111"});
  auto e = find_pii("pay 4111 1111 1111 1111");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].begin, 4u);
  EXPECT_EQ(e[0].end, 23u);
}

TEST(Pii, CreditCardNegatives) {
  EXPECT_TRUE(found("card 4111 1111 1111 1112 ok").empty()); // Luhn fails
  EXPECT_TRUE(found("41111111111111111111").empty());        // 20 digits
  EXPECT_TRUE(found("94111111111111111").empty());           // inside a longer run
  EXPECT_TRUE(found("x4111111111111111").empty());
  EXPECT_TRUE(found("0000 0000 0000 0000").empty());  // Luhn-valid placeholder
  EXPECT_TRUE(found("4111 1111-1111 1111").empty());  // mixed separators
  EXPECT_TRUE(found("41 1111 1111 1111 11").empty()); // not a card grouping
}

TEST(Pii, LuhnValidator) {
  EXPECT_TRUE(luhn_valid("4111 1111 1111 1111"));
  EXPECT_TRUE(luhn_valid("4111-1111-1111-1111"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_FALSE(luhn_valid("4111 1111 1111 1112"));
  EXPECT_FALSE(luhn_valid("4111x1111 1111 1111"));
  EXPECT_FALSE(luhn_valid("0"));                    // too short, though Luhn-valid
  EXPECT_FALSE(luhn_valid("00000000000000000000")); // 20 digits
}

TEST(Pii, UsSsn) {
  std::string_view text = "SSN 078-05-1120.";
  auto e = find_pii(text);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, "us_ssn");
  EXPECT_EQ(e[0].begin, 4u);
  EXPECT_EQ(e[0].end, 15u);
  EXPECT_EQ(found("078 05 1120"), Found{"us_ssn=078 05 1120"});

  EXPECT_TRUE(found("000-12-3456").empty());
  EXPECT_TRUE(found("666-12-3456").empty());
  EXPECT_TRUE(found("900-12-3456").empty());
  EXPECT_TRUE(found("999-12-3456").empty());
  EXPECT_TRUE(found("123-00-4567").empty());
  EXPECT_TRUE(found("123-45-0000").empty());
  EXPECT_TRUE(found("1078-05-1120").empty());
  EXPECT_TRUE(found("078-05-11201").empty());
  EXPECT_TRUE(found("12 078 05 1120").empty());
  EXPECT_TRUE(found("078-05 1120").empty());
  EXPECT_TRUE(found("078051120").empty()); // separators required in text
}

TEST(Pii, UsSsnValidator) {
  EXPECT_TRUE(us_ssn_valid("078-05-1120"));
  EXPECT_TRUE(us_ssn_valid("078 05 1120"));
  EXPECT_TRUE(us_ssn_valid("078051120"));
  EXPECT_TRUE(us_ssn_valid("899-99-9999"));
  EXPECT_FALSE(us_ssn_valid("000-12-3456"));
  EXPECT_FALSE(us_ssn_valid("666-12-3456"));
  EXPECT_FALSE(us_ssn_valid("900-12-3456"));
  EXPECT_FALSE(us_ssn_valid("123-00-4567"));
  EXPECT_FALSE(us_ssn_valid("123-45-0000"));
  EXPECT_FALSE(us_ssn_valid("123-45 6789"));
  EXPECT_FALSE(us_ssn_valid("12a-45-6789"));
  EXPECT_FALSE(us_ssn_valid("123-45-678"));
}

TEST(Pii, Ipv4) {
  std::string_view text = "ip 192.168.0.1.";
  auto e = find_pii(text);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, "ip_address");
  EXPECT_EQ(e[0].begin, 3u);
  EXPECT_EQ(e[0].end, 14u);
  EXPECT_EQ(found("host 10.0.0.1:8080/x"), Found{"ip_address=10.0.0.1"});
  EXPECT_EQ(found("255.255.255.0"), Found{"ip_address=255.255.255.0"});

  EXPECT_TRUE(found("256.1.1.1").empty());
  EXPECT_TRUE(found("1.2.3.4.5").empty());
  EXPECT_TRUE(found("version 10.0.0.1.2").empty());
  EXPECT_TRUE(found("v1.2.3.4").empty());
  EXPECT_TRUE(found("1.2.3").empty());
  EXPECT_TRUE(found("1.2.3.1000").empty());
}

TEST(Pii, Ipv6) {
  EXPECT_EQ(found("ping 2001:db8::1 now"), Found{"ip_address=2001:db8::1"});
  EXPECT_EQ(found("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            Found{"ip_address=2001:0db8:85a3:0000:0000:8a2e:0370:7334"});
  EXPECT_EQ(found("[2001:db8::1]:8080"), Found{"ip_address=2001:db8::1"});
  EXPECT_EQ(found("fe80::1: down"), Found{"ip_address=fe80::1"});
  EXPECT_EQ(found("Address:fe80::1"), Found{"ip_address=fe80::1"});
  // The embedded dotted quad is also an IPv4 hit; the longer span wins.
  EXPECT_EQ(found("::ffff:192.168.0.1"), Found{"ip_address=::ffff:192.168.0.1"});

  EXPECT_TRUE(found("meet at 10:30").empty());
  EXPECT_TRUE(found("12:30:45").empty());
  EXPECT_TRUE(found("00:1A:2B:3C:4D:5E").empty()); // MAC address: six groups
  EXPECT_TRUE(found("std::vector<int>").empty());
  EXPECT_TRUE(found("Face::Bad").empty());
  EXPECT_TRUE(found("1::2::3").empty());
  EXPECT_TRUE(found("1:2:3:4:5:6:7").empty());
  EXPECT_TRUE(found("12345::1").empty());
  EXPECT_TRUE(found("a[::2]").empty());
}

TEST(Pii, Iban) {
  EXPECT_EQ(found("pay to GB82 WEST 1234 5698 7654 32."),
            Found{"iban=GB82 WEST 1234 5698 7654 32"});
  auto e = find_pii("IBAN: DE89370400440532013000");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].type, "iban");
  EXPECT_EQ(e[0].begin, 6u);
  EXPECT_EQ(e[0].end, 28u);
  // Its digits may also look like a card number; the longer IBAN wins.
  EXPECT_EQ(found("DE89 3704 0044 0532 0130 00"), Found{"iban=DE89 3704 0044 0532 0130 00"});
  EXPECT_EQ(found("BE68 5390 0754 7034 THIS"), Found{"iban=BE68 5390 0754 7034"});

  EXPECT_TRUE(found("GB82 WEST 1234 5698 7654 33").empty());
  EXPECT_TRUE(found("DE88370400440532013000").empty());
  EXPECT_TRUE(found("de89370400440532013000").empty());
  EXPECT_TRUE(found("XDE89370400440532013000").empty());
  EXPECT_TRUE(found("DE89  3704 0044 0532 0130 00").empty()); // double space
}

TEST(Pii, IbanValidator) {
  EXPECT_TRUE(iban_valid("GB82 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_TRUE(iban_valid("NO9386011117947"));
  EXPECT_TRUE(iban_valid("MT84MALT011000012345MTLCAST001S"));
  EXPECT_FALSE(iban_valid("DE88370400440532013000")); // check digits
  EXPECT_FALSE(iban_valid("DE8937040044053201300"));  // 21 characters, DE has 22
  // Both pass the modulus; DE is 22 characters long, ZZ is not in the length table.
  EXPECT_FALSE(iban_valid("DE543704004405320130001"));
  EXPECT_TRUE(iban_valid("ZZ843704004405320130001"));
  EXPECT_FALSE(iban_valid("gb82west12345698765432"));
  EXPECT_FALSE(iban_valid("GB82-WEST-1234-5698-7654-32"));
  EXPECT_FALSE(iban_valid("GB82"));
  // 01 and 99 satisfy the modulus where 98 and 02 do, but are never issued.
  EXPECT_TRUE(iban_valid("DE98370400440532013032"));
  EXPECT_FALSE(iban_valid("DE01370400440532013032"));
  EXPECT_TRUE(iban_valid("DE02370400440532013014"));
  EXPECT_FALSE(iban_valid("DE99370400440532013014"));
}

TEST(Pii, SeveralEntitiesSortedByBegin) {
  std::string_view text = "Card 4111-1111-1111-1111, ip 10.0.0.1, mail a@b.co, "
                          "SSN 078-05-1120, phone +44 20 7946 0958, "
                          "IBAN DE89370400440532013000.";
  auto e = find_pii(text);
  ASSERT_EQ(e.size(), 6u);
  std::vector<std::string> types;
  for (size_t k = 0; k < e.size(); ++k) {
    types.push_back(e[k].type);
    if (k > 0) {
      EXPECT_LE(e[k - 1].end, e[k].begin);
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"credit_card", "ip_address", "email", "us_ssn",
                                             "phone", "iban"}));
}

TEST(Pii, OrdinaryProseHasNoPii) {
  EXPECT_TRUE(found("Please write a short Python function that reads a CSV file, groups the rows "
                    "by region and month, and prints a table. In 2024 we sold 1,250 units at 3.5% "
                    "growth; see v2.1.0 (section 4.2.1) and call it at 10:30 on 2024-01-15.")
                  .empty());
  EXPECT_TRUE(found("").empty());
}

TEST(Pii, Utf8TextAroundEntitiesUsesByteOffsets) {
  std::string_view text = "电话：555-123-4567。邮箱a@b.co";
  auto e = find_pii(text);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].type, "phone");
  EXPECT_EQ(e[0].begin, 9u); // three 3-byte characters before it
  EXPECT_EQ(e[0].end, 21u);
  EXPECT_EQ(e[1].type, "email");
  EXPECT_EQ(e[1].begin, 30u);
  EXPECT_EQ(e[1].end, 36u);
  EXPECT_EQ(redact_pii(text, e), "电话：[PHONE]。邮箱[EMAIL]");
  EXPECT_EQ(found("café a@b.co é"), Found{"email=a@b.co"});
}

TEST(Pii, MergeResolvesOverlapsByScoreThenLength) {
  std::vector<PiiEntity> pattern = {entity("email", 10, 20, 1.0, "pattern"),
                                    entity("phone", 30, 42, kPhoneScore, "pattern")};
  std::vector<PiiEntity> model = {entity("PERSON", 5, 12, 0.9, "model"),      // loses to email
                                  entity("PHONE_NUM", 28, 40, 0.95, "model"), // beats the phone
                                  entity("LOC", 50, 55, 0.6, "model"),        // no overlap
                                  entity("EMPTY", 60, 60, 1.0, "model")};     // dropped
  auto merged = merge_pii(pattern, model);
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].type, "email");
  EXPECT_EQ(merged[1].type, "PHONE_NUM");
  EXPECT_EQ(merged[1].source, "model");
  EXPECT_EQ(merged[1].begin, 28u);
  EXPECT_EQ(merged[2].type, "LOC");

  // Equal scores: the longer span wins; touching spans do not overlap.
  merged = merge_pii({entity("a", 0, 5, 0.8, "model"), entity("c", 10, 12, 0.8, "model")},
                     {entity("b", 3, 10, 0.8, "model")});
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0].type, "b");
  EXPECT_EQ(merged[1].type, "c");

  // A NaN score ranks below any real one.
  merged = merge_pii({entity("nan", 0, 10, std::numeric_limits<double>::quiet_NaN(), "model")},
                     {entity("low", 2, 4, 0.1, "model")});
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].type, "low");

  EXPECT_TRUE(merge_pii({}, {}).empty());
}

TEST(Pii, Redact) {
  std::string_view text = "mail me at a@b.co now";
  EXPECT_EQ(redact_pii(text, find_pii(text)), "mail me at [EMAIL] now");
  std::string_view two = "4111 1111 1111 1111 and 078-05-1120";
  EXPECT_EQ(redact_pii(two, find_pii(two)), "[CREDIT_CARD] and [US_SSN]");
  EXPECT_EQ(redact_pii("no pii", {}), "no pii");
  // A model label is upper-cased as is; an overlapping or out-of-range entity is skipped.
  EXPECT_EQ(
      redact_pii("Ann met Bob",
                 {entity("person", 0, 3, 0.9, "model"), entity("person", 2, 5, 0.9, "model"),
                  entity("person", 8, 11, 0.9, "model"), entity("person", 11, 40, 0.9, "model")}),
      "[PERSON] met [PERSON]");
}

} // namespace
} // namespace semrouter::signals
