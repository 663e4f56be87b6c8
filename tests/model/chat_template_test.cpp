#include "model/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "model/chat_template_jinja.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::model {
namespace {

const std::vector<ChatMessage> kSystemUser = {{"system", "You are a helpful assistant."},
                                              {"user", "Hello!"}};

std::string template_from_config(const std::filesystem::path& path) {
  return nlohmann::json::parse(testing::read_text(path)).at("chat_template").get<std::string>();
}

std::string render_jinja(std::string_view source, jinja::Object context = {}) {
  return jinja::Template::parse(source).render(context);
}

TEST(ChatTemplateTest, Llama3RealTemplateRendersSystemUserWithGenerationPrompt) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/llama3.tokenizer_config.json");
  auto t =
      ChatTemplate::from_source(template_from_config(path), "<|begin_of_text|>", "<|end_of_text|>");
  ASSERT_TRUE(t.uses_jinja());
  EXPECT_EQ(t.family(), ChatFamily::kLlama3);
  EXPECT_EQ(t.render(kSystemUser, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "You are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Llama3RealTemplateTrimsContent) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/llama3.tokenizer_config.json");
  auto t = ChatTemplate::from_source(template_from_config(path), "<|begin_of_text|>", "");
  std::vector<ChatMessage> msgs = {{"user", "  Hi there \n"}};
  EXPECT_EQ(t.render(msgs, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Qwen3RealTemplateRendersSystemUserWithGenerationPrompt) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/qwen3.tokenizer_config.json");
  auto t = ChatTemplate::from_source(template_from_config(path), "", "<|im_end|>");
  ASSERT_TRUE(t.uses_jinja());
  const std::string expected =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nHello!<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(t.render(kSystemUser, true), expected);
  // Without the generation prompt the assistant header is left off.
  EXPECT_EQ(t.render(kSystemUser, false),
            expected.substr(0, expected.size() - std::string("<|im_start|>assistant\n").size()));
  // The built-in ChatML format agrees with the real template for plain conversations.
  EXPECT_EQ(ChatTemplate::builtin(ChatFamily::kChatML).render(kSystemUser, true), expected);
}

TEST(ChatTemplateTest, Qwen3RealTemplateDropsEarlierReasoningAndHonoursEnableThinking) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/qwen3.tokenizer_config.json");
  auto t = ChatTemplate::from_source(template_from_config(path), "", "<|im_end|>");
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  msgs.push_back({{"role", "user"}, {"content", "2+2?"}});
  msgs.push_back({{"role", "assistant"}, {"content", "<think>\nadd them\n</think>\n\n4"}});
  msgs.push_back({{"role", "user"}, {"content", "and 3+3?"}});
  nlohmann::ordered_json extra = {{"enable_thinking", false}};
  EXPECT_EQ(t.render_json(msgs, true, &extra),
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>user\nand 3+3?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplateTest, Qwen3RealTemplateListsToolsAsJson) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/qwen3.tokenizer_config.json");
  auto t = ChatTemplate::from_source(template_from_config(path), "", "<|im_end|>");
  nlohmann::ordered_json msgs = {{{"role", "user"}, {"content", "Weather?"}}};
  nlohmann::ordered_json extra = {
      {"tools",
       {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"strict", true}}}}}}};
  std::string out = t.render_json(msgs, true, &extra);
  EXPECT_NE(out.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                     "\"strict\": true}}\n</tools>"),
            std::string::npos)
      << out;
  EXPECT_TRUE(out.ends_with("<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"))
      << out;
}

TEST(ChatTemplateTest, MistralFamilyFoldsSystemIntoFirstUserTurn) {
  auto t = ChatTemplate::builtin(ChatFamily::kMistral);
  std::vector<ChatMessage> msgs = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(t.render(msgs, true), "<s>[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] Bye [/INST]");
}

TEST(ChatTemplateTest, DeepSeekFamilyFormat) {
  auto t = ChatTemplate::builtin(ChatFamily::kDeepSeek);
  EXPECT_EQ(t.render(kSystemUser, true),
            "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello!<｜Assistant｜>");
  std::vector<ChatMessage> msgs = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}};
  EXPECT_EQ(t.render(msgs, false),
            "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜>b<｜end▁of▁sentence｜><｜User｜>c");
}

TEST(ChatTemplateTest, Llama2FamilyWrapsSystemInSysTags) {
  auto t = ChatTemplate::builtin(ChatFamily::kLlama2);
  std::vector<ChatMessage> msgs = {
      {"system", "Sys"}, {"user", "Hi"}, {"assistant", "Yo"}, {"user", "More"}};
  EXPECT_EQ(t.render(msgs, true),
            "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\nHi [/INST] Yo </s><s>[INST] More [/INST]");
}

TEST(ChatTemplateTest, AbsentTemplateUsesTheGivenFamily) {
  auto t = ChatTemplate::from_source("", "<|begin_of_text|>", "", ChatFamily::kLlama3);
  EXPECT_FALSE(t.uses_jinja());
  EXPECT_NE(t.fallback_reason().find("no chat template"), std::string::npos);
  EXPECT_EQ(t.render(std::vector<ChatMessage>{{"user", "x"}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, UnparsableTemplateWithKnownMarkersFallsBackToThatFamily) {
  // A macro is outside the supported subset; the ChatML markers identify the family.
  auto t = ChatTemplate::from_source("{% macro m(x) %}{{ x }}{% endmacro %}<|im_start|>{{ m(1) }}",
                                     "", "");
  EXPECT_FALSE(t.uses_jinja());
  EXPECT_EQ(t.family(), ChatFamily::kChatML);
  EXPECT_NE(t.fallback_reason().find("macro"), std::string::npos) << t.fallback_reason();
}

TEST(ChatTemplateTest, MalformedTemplateWithoutKnownFormatThrowsClearError) {
  try {
    ChatTemplate::from_source("{% for m in messages %}{{ m.content }}", "", "");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("endfor"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatTemplate::from_source("{{ 'unterminated }}", "", ""), FormatError);
  EXPECT_THROW(ChatTemplate::from_source("{{ a + }}", "", ""), FormatError);
}

TEST(ChatTemplateTest, RaiseExceptionBecomesInvalidArgument) {
  auto t = ChatTemplate::from_source(
      "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}"
      "{% endif %}ok",
      "", "");
  std::vector<ChatMessage> ok = {{"user", "x"}};
  EXPECT_EQ(t.render(ok, true), "ok");
  try {
    t.render(std::vector<ChatMessage>{{"assistant", "x"}}, true);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("first message must be user"), std::string::npos);
  }
}

TEST(JinjaTest, WhitespaceControlTrimBlocksAndLstripBlocks) {
  EXPECT_EQ(render_jinja("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render_jinja("{% if true %}\n    x\n    {% endif %}\ny"), "    x\ny");
  EXPECT_EQ(render_jinja("{{ 'v' }}\n"), "v\n");  // not for expression tags
}

TEST(JinjaTest, LoopVariablesNamespaceAndScoping) {
  EXPECT_EQ(render_jinja("{% for x in [5, 6, 7] %}{{ loop.index }}{{ loop.index0 }}"
                         "{{ 'F' if loop.first }}{{ 'L' if loop.last }}{{ loop.revindex }},"
                         "{% endfor %}"),
            "10F3,212,32L1,");
  EXPECT_EQ(
      render_jinja("{% set n = 1 %}{% for x in [1, 2] %}{% set n = n + x %}{% endfor %}{{ n }}"),
      "1");  // `set` inside a loop does not leak out
  EXPECT_EQ(render_jinja("{% set ns = namespace(n=1) %}{% for x in [1, 2] %}"
                         "{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"),
            "4");
  EXPECT_EQ(render_jinja("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% else %}none"
                         "{% endfor %}|{% for x in [] %}{{ x }}{% else %}none{% endfor %}"),
            "24|none");
  EXPECT_EQ(render_jinja("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(render_jinja("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}"
                         "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "02");
}

TEST(JinjaTest, ExpressionsOperatorsAndPrecedence) {
  jinja::Object ctx;
  ctx.set("messages", jinja::Value(jinja::Array{jinja::Value("a"), jinja::Value("b")}));
  EXPECT_EQ(render_jinja("{{ messages|length - 1 }}", ctx), "1");
  EXPECT_EQ(render_jinja("{{ messages[::-1] }}|{{ messages[-1] }}|{{ 'hello'[1:3] }}", ctx),
            "['b', 'a']|b|el");
  EXPECT_EQ(render_jinja("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 3 }}"),
            "7 3 2 3.5 8");
  EXPECT_EQ(render_jinja("{{ 'a' ~ 1 ~ none }} {{ 'x' + 'y' }} {{ 'b' in 'abc' }} "
                         "{{ 3 not in [1, 2] }}"),
            "a1None xy True True");
  EXPECT_EQ(render_jinja("{{ not true or false }} {{ 1 < 2 and 'yes' }} {{ 'a' if 0 else 'b' }}"),
            "False yes b");
  EXPECT_EQ(render_jinja("{{ x is defined }} {{ x is not defined }} {{ none is none }} "
                         "{{ 'a' is string }} {{ false is false }} {{ 4 is divisibleby(2) }}"),
            "False True True True True True");
}

TEST(JinjaTest, FiltersAndMethods) {
  EXPECT_EQ(render_jinja("{{ '  hi  '|trim }}|{{ [1, 2, 3]|length }}|{{ 'abc'|upper }}|"
                         "{{ ['a', 'b']|join(', ') }}|{{ x|default('d') }}|{{ [3, 4]|first }}"),
            "hi|3|ABC|a, b|d|3");
  EXPECT_EQ(render_jinja("{{ {'a': [1, 2.5, none], 'b': \"q\\\"\\n\"}|tojson }}"),
            "{\"a\": [1, 2.5, null], \"b\": \"q\\\"\\n\"}");
  EXPECT_EQ(render_jinja("{{ {'a': 1}|tojson(indent=2) }}"), "{\n  \"a\": 1\n}");
  EXPECT_EQ(render_jinja("{{ 'a,b,c'.split(',')[1] }} {{ 'xxhixx'.strip('x') }} "
                         "{{ '\\nhi'.lstrip('\\n') }} {{ 'hello'.startswith('he') }} "
                         "{{ 'hello'.endswith(('x', 'lo')) }} {{ 'a b'.replace(' ', '_') }}"),
            "b hi hi True True a_b");
  EXPECT_EQ(
      render_jinja("{{ {'k': 'v'}.get('k') }} {{ {'k': 'v'}.get('z', 'd') }} "
                   "{{ [{'r': 'u'}, {'r': 's'}]|selectattr('r', 'equalto', 's')|list|length }}"),
      "v d 1");
}

TEST(JinjaTest, UnknownNamesAndBadOperationsGiveClearErrors) {
  EXPECT_THROW(render_jinja("{{ 'a' + 1 }}"), FormatError);
  EXPECT_THROW(render_jinja("{{ x|nosuchfilter }}"), FormatError);
  EXPECT_THROW(render_jinja("{{ nosuchfunction() }}"), FormatError);
  EXPECT_THROW(jinja::Template::parse("{% include 'x' %}"), FormatError);
  EXPECT_THROW(jinja::Template::parse("{% if x %}{% endfor %}"), FormatError);
}

}  // namespace
}  // namespace herd::model
