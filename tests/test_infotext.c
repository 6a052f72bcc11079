/* test_infotext.c — A1111's "parameters" text: parsing (infotext.h) as A1111's parse_generation_parameters
 * does, on strings in the forms A1111 writes (< 1.9: "Sampler: DPM++ 2M Karras"; >= 1.9: "Sampler: DPM++ 2M,
 * Schedule type: Karras"), multi-line prompts and negative prompts, quoted values; the sampler names both
 * ways; and a round trip: lorastyle's own text (pipeline_parameters_text) through a PNG it writes, read
 * back by `generate --params-from` (genopts_parse) with later options overriding.
 *
 * Usage: test_infotext [FIXTURE_DIR]   (no fixtures used) */
#include <unistd.h>

#include "cli.h"      // defines: GenOptions, genopts_*
#include "image.h"    // defines: image_write_png
#include "infotext.h" // defines: InfoText, infotext_*
#include "testutil.h"

static int same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static void check_parse(void) {
    InfoText it;
    /* A1111 1.9+: multi-line prompt with a lora tag, multi-line negative prompt, quoted values */
    const char *a1111 =
        "masterpiece, a fox in the snow <lora:ink:0.8>\n"
        "  watercolor, soft light  \n"
        "Negative prompt: blurry, lowres\n"
        "bad hands\n"
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: \"ink: 0123456789ab, \\\"odd\\\": 1\", "
        "TI hashes: \"easynegative: c74b4e810b03\", Version: v1.10.1";
    CHECK(infotext_parse(&it, a1111) == 0, "parse: %s", ls_last_error());
    CHECK(same(it.prompt, "masterpiece, a fox in the snow <lora:ink:0.8>\nwatercolor, soft light"), "prompt '%s'",
          it.prompt);
    CHECK(same(it.negative, "blurry, lowres\nbad hands"), "negative '%s'", it.negative);
    CHECK(it.n == 11, "%d fields", it.n);
    CHECK(same(infotext_get(&it, "Steps"), "25") && same(infotext_get(&it, "Sampler"), "DPM++ 2M") &&
              same(infotext_get(&it, "Schedule type"), "Karras") && same(infotext_get(&it, "CFG scale"), "7") &&
              same(infotext_get(&it, "Seed"), "1234567890") && same(infotext_get(&it, "Size"), "512x768") &&
              same(infotext_get(&it, "Version"), "v1.10.1"),
          "settings");
    CHECK(same(infotext_get(&it, "Lora hashes"), "ink: 0123456789ab, \"odd\": 1"), "quoted value '%s'",
          infotext_get(&it, "Lora hashes"));
    CHECK(infotext_get(&it, "Clip skip") == NULL, "absent field");
    infotext_free(&it);

    /* A1111 < 1.9: combined sampler name, no negative prompt, one-line prompt */
    CHECK(infotext_parse(&it, "a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: "
                              "512x512, Model hash: 6ce0161689, Clip skip: 2\n") == 0, "parse old");
    CHECK(same(it.prompt, "a cat") && same(it.negative, "") && same(infotext_get(&it, "Sampler"), "DPM++ 2M Karras") &&
              same(infotext_get(&it, "Clip skip"), "2") && it.n == 7,
          "old form: prompt '%s', %d fields", it.prompt, it.n);
    infotext_free(&it);

    /* no settings line (fewer than 3 fields): everything is prompt; a lone "Negative prompt:" */
    CHECK(infotext_parse(&it, "a photo: of a dog, ok\nsecond line") == 0, "parse prompt only");
    CHECK(same(it.prompt, "a photo: of a dog, ok\nsecond line") && it.n == 0, "prompt only: '%s' %d", it.prompt, it.n);
    infotext_free(&it);
    CHECK(infotext_parse(&it, "Negative prompt: ugly\nSteps: 5, Sampler: Euler a, Seed: 3") == 0, "parse");
    CHECK(same(it.prompt, "") && same(it.negative, "ugly") && same(infotext_get(&it, "Sampler"), "Euler a"),
          "empty prompt: '%s' / '%s'", it.prompt, it.negative);
    infotext_free(&it);

    /* a quoted value not followed by ',' is read unquoted, as the regex falls back to [^,]* */
    CHECK(infotext_parse(&it, "p\nSteps: 5, Model: \"a\"b, Seed: 3, Size: 64x64") == 0, "parse");
    CHECK(same(infotext_get(&it, "Model"), "\"a\"b"), "fallback '%s'", infotext_get(&it, "Model"));
    infotext_free(&it);
    CHECK(infotext_parse(&it, "p\nSteps: 5, Model: \"bad \\x\", Seed: 3") < 0 && strstr(ls_last_error(), "Model"),
          "malformed quoted value: %s", ls_last_error());
    infotext_free(&it);

    char *q = infotext_quote("plain");
    CHECK(same(q, "plain"), "quote plain '%s'", q);
    free(q);
    q = infotext_quote("my model, v2: \"x\"");
    CHECK(same(q, "\"my model, v2: \\\"x\\\"\""), "quote '%s'", q);
    free(q);
}

static void check_samplers(void) {
    struct {
        const char *sampler, *schedule;
        SamplerKind k;
        int karras;
    } ok[] = {{"DPM++ 2M", "Karras", SAMPLER_DPMPP_2M, 1}, {"DPM++ 2M Karras", NULL, SAMPLER_DPMPP_2M, 1},
              {"DPM++ 2M", "Automatic", SAMPLER_DPMPP_2M, 0}, {"DPM++ 2M", NULL, SAMPLER_DPMPP_2M, 0},
              {"Euler a", "Automatic", SAMPLER_EULER_A, 0}, {"euler", "karras", SAMPLER_EULER, 1},
              {"Euler Karras", "", SAMPLER_EULER, 1}, {"DDIM", NULL, SAMPLER_DDIM, 0}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        SamplerKind k = SAMPLER_COUNT;
        int karras = -1;
        int rc = sampler_from_display_name(ok[i].sampler, ok[i].schedule, &k, &karras);
        CHECK(rc == 0 && k == ok[i].k && karras == ok[i].karras, "'%s' + '%s': rc %d kind %d karras %d",
              ok[i].sampler, ok[i].schedule ? ok[i].schedule : "(none)", rc, k, karras);
        /* and back: the name written to the PNG */
        CHECK(rc != 0 || sampler_from_display_name(sampler_display_name(k, 0), karras ? "Karras" : "Automatic", &k,
                                                   &karras) == 0, "round trip");
    }
    SamplerKind k;
    int karras;
    CHECK(sampler_from_display_name("DPM++ SDE", "Karras", &k, &karras) < 0 && strstr(ls_last_error(), "DPM++ SDE"),
          "unknown sampler: %s", ls_last_error());
    CHECK(sampler_from_display_name("Euler", "Exponential", &k, &karras) < 0 &&
              strstr(ls_last_error(), "Exponential"), "unknown schedule: %s", ls_last_error());
    CHECK(sampler_from_display_name("Euler a", "Karras", &k, &karras) < 0, "Euler a has no Karras here");
}

/* lorastyle's text → PNG → --params-from, then options after it override. */
static void check_round_trip(const char *tmp) {
    Model m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "my model, v2");
    snprintf(m.hash, sizeof m.hash, "0123456789");
    GenParams p;
    gen_params_init(&p);
    p.prompt = "a fox, watercolor";
    p.display_prompt = "a fox, watercolor\nsecond line <lora:ink:0.5>";
    p.negative = "blurry\nugly";
    p.steps = 13, p.cfg = 6.5f, p.sampler = SAMPLER_DPMPP_2M, p.karras = 1, p.seed = 4000000000ULL;
    p.width = 64, p.height = 96, p.clip_skip = 2;
    p.extra_params = ", Lora hashes: \"ink: 0123456789ab\"";
    char *text = pipeline_parameters_text(&m, &p, 1); /* image 1 of a batch: seed + 1 */
    CHECK(strstr(text, "Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5") != NULL, "text: %s", text);
    CHECK(strstr(text, "Model: \"my model, v2\"") != NULL, "model name quoted: %s", text);
    char path[600];
    snprintf(path, sizeof path, "%s/a.png", tmp);
    uint8_t px[3 * 4] = {0};
    Image img = {2, 2, 3, px};
    const char *kv[2] = {"parameters", text};
    CHECK(image_write_png(path, &img, kv, 1) == 0, "write: %s", ls_last_error());

    GenOptions o;
    genopts_init(&o, "out.png");
    o.params_from_ok = 1;
    char *argv[] = {"--negative", "gone", "--params-from", path, "--cfg", "3", NULL};
    int used = 0;
    for (int i = 0; i < 6; i += used) {
        used = genopts_parse(&o, 6, argv, i);
        CHECK(used > 0, "parse %s: %s", argv[i], ls_last_error());
        if (used <= 0) break;
    }
    CHECK(same(o.p.prompt, p.display_prompt), "prompt '%s'", o.p.prompt);
    CHECK(same(o.p.negative, p.negative), "negative '%s'", o.p.negative);
    CHECK(o.p.steps == 13 && o.p.sampler == SAMPLER_DPMPP_2M && o.p.karras == 1 && o.seed == 4000000001L &&
              o.p.width == 64 && o.p.height == 96 && o.p.clip_skip == 2,
          "settings: steps %d sampler %d karras %d seed %ld size %dx%d clip skip %d", o.p.steps, o.p.sampler,
          o.p.karras, o.seed, o.p.width, o.p.height, o.p.clip_skip);
    CHECK(o.p.cfg == 3.0f, "--cfg after --params-from overrides: %g", (double)o.p.cfg);
    /* a later --sampler replaces the PNG's sampler and its schedule */
    char *argv2[] = {"--sampler", "euler_a", NULL};
    CHECK(genopts_parse(&o, 2, argv2, 0) == 2 && o.p.sampler == SAMPLER_EULER_A && o.p.karras == 0,
          "--sampler after: %d %d", o.p.sampler, o.p.karras);
    genopts_free(&o);

    /* a sampler lorastyle lacks: an error at the end, unless a later --sampler replaces it */
    free(text);
    text = strdup("p\nSteps: 5, Sampler: DPM++ SDE, Schedule type: Karras, Seed: 3");
    kv[1] = text;
    CHECK(image_write_png(path, &img, kv, 1) == 0, "write: %s", ls_last_error());
    genopts_init(&o, "out.png");
    o.params_from_ok = 1;
    CHECK(genopts_parse(&o, 4, argv + 2, 0) == 2 && strstr(o.png_sampler_error, "DPM++ SDE") &&
              strstr(o.png_sampler_error, path), "pending sampler error '%s'", o.png_sampler_error);
    CHECK(genopts_parse(&o, 2, argv2, 0) == 2 && !o.png_sampler_error[0], "--sampler clears it");
    genopts_free(&o);

    /* bad input: one-line errors naming the file */
    const char *bad[][2] = {{"p\nSteps: many, Sampler: Euler, Seed: 3", "Steps"},
                            {"p\nSteps: 5, Sampler: Euler, Size: 64 by 64", "Size"}};
    for (int i = 0; i < 2; i++) {
        kv[1] = bad[i][0];
        CHECK(image_write_png(path, &img, kv, 1) == 0, "write: %s", ls_last_error());
        genopts_init(&o, "out.png");
        o.params_from_ok = 1;
        int rc = genopts_parse(&o, 4, argv + 2, 0);
        const char *e = ls_last_error();
        CHECK(rc < 0 && strstr(e, path) && strstr(e, bad[i][1]) && !strchr(e, '\n'), "bad %s: rc %d '%s'", bad[i][1],
              rc, e);
        genopts_free(&o);
    }
    CHECK(image_write_png(path, &img, NULL, 0) == 0, "write: %s", ls_last_error());
    genopts_init(&o, "out.png");
    o.params_from_ok = 1;
    CHECK(genopts_parse(&o, 4, argv + 2, 0) < 0 && strstr(ls_last_error(), path), "no text: %s", ls_last_error());
    genopts_free(&o);
    genopts_init(&o, "out.png"); /* only generate takes it */
    CHECK(genopts_parse(&o, 4, argv + 2, 0) == 0, "--params-from outside generate");
    genopts_free(&o);
    free(text);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    char tmp[] = "/tmp/ls_test_infotext_XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    check_parse();
    check_samplers();
    check_round_trip(tmp);
    test_remove_dir(tmp);
    return test_summary();
}
