/* The interactive tools: `rwkv gen --chat` (one reply per input line, /reset and /quit, a seed reproduces
 * the conversation) and the `rwkv batch` demo. */
#include <stdlib.h>
#include <string.h>

#include "util/testutil.h"

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

int main(void)
{
    const char *in = tu_tmp("chat.in"), *o1 = tu_tmp("chat1.out"), *o2 = tu_tmp("chat2.out");
    const char *script = "Hello\n\n/reset\nHow are you?\n/quit\nnot read\n";
    CHECK(tu_write_file(in, script, strlen(script)));
    const char *model = tu_shared("models/tiny-rwkv-7v0-834K.st");
    for (int k = 0; k < 2; k++)
        CHECK(tu_system("%s gen --model %s --chat -n 40 --seed 5 < %s > %s 2>/dev/null", tu_cli(), model, in,
                        k ? o2 : o1) == 0);
    size_t n1, n2;
    char *a = tu_read_file(o1, &n1), *b = tu_read_file(o2, &n2);
    CHECK(a && b);
    if (a && b) {
        CHECK_MSG(count(a, "Assistant:") == 2, "two replies (the empty line and what follows /quit are not turns)");
        CHECK_MSG(n1 == n2 && memcmp(a, b, n1) == 0, "a seed reproduces the conversation");
    }
    free(a);
    free(b);
    CHECK(tu_system("%s gen --model %s --chat --prompt-ids 1,2 < %s > /dev/null 2>&1", tu_cli(),
                    tu_shared("models/tiny-rwkv-7v0-834K.st"), in) == 0);
    /* the batch demo: three prompts (a blank line is not one), a completion each */
    const char *prompts = "The quick\nHello\n\nRWKV is\n";
    CHECK(tu_write_file(in, prompts, strlen(prompts)));
    CHECK(tu_system("%s batch --model %s --prompts %s -n 12 --seed 2 > %s 2>/dev/null", tu_cli(), model, in, o1) == 0);
    char *out = tu_read_file(o1, &n1);
    CHECK_MSG(out && count(out, "--- ") == 3 && strstr(out, "--- 3: RWKV is"), "three completions: %s", out);
    free(out);
    CHECK(tu_system("%s batch --model %s --prompts %s 2>/dev/null", tu_cli(), model, tu_tmp("nothing")) == 1);
    remove(in);
    remove(o1);
    remove(o2);
    return tu_finish("test_chat");
}
