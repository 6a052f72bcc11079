/* cmd_scenes.c — `lorastyle scenes`: the synthetic scenes (datasets/scenes.h) as files: a captioned image
 * folder in kohya's repeat layout (the shipped style sets are made this way), or captions on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"    // defines: arg_fail, arg_need, arg_int
#include "common.h" // defines: ls_set_error, ls_path_join, ls_mkdir_p, ls_write_file_atomic
#include "image.h"  // defines: Image, image_write_png
#include "scenes.h" // defines: Scene, scene_sample, scene_caption, scene_render

static int usage(FILE *f) {
    fprintf(f, "usage: lorastyle scenes -o DIR [--style plain|ink|neon|mosaic|watercolour] [-n 40] [--seed 1]\n"
               "                        [--size 64] [--repeats 10] [--set train|heldout|single]\n"
               "       lorastyle scenes --captions [-n 20] [--seed 1] [--set ...]   (captions on stdout)\n"
               "Writes DIR/REPEATS_STYLE/NNNN.png with NNNN.txt captions (kohya's layout), drawn from the scene\n"
               "grammar (datasets/scenes.h); the same seed gives the same files.\n");
    return f == stderr ? 2 : 0;
}

int cmd_scenes(int argc, char **argv) {
    const char *out = NULL, *style_name = "plain", *set_name = "train";
    long n = 40, seed = 1, size = 64, repeats = 10;
    int captions = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (arg_is_help(a)) return usage(stdout);
        if (!strcmp(a, "--captions")) {
            captions = 1;
            continue;
        }
        if (arg_need(argc, argv, i) < 0) return arg_fail();
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--style")) style_name = v;
        else if (!strcmp(a, "--set")) set_name = v;
        else if (!strcmp(a, "-n")) rc = arg_int(a, v, 1, 1000000, &n);
        else if (!strcmp(a, "--seed")) rc = arg_int(a, v, 0, 0x7fffffffL, &seed);
        else if (!strcmp(a, "--size")) rc = arg_int(a, v, 16, 1024, &size);
        else if (!strcmp(a, "--repeats")) rc = arg_int(a, v, 1, 100000, &repeats);
        else rc = ls_set_error("scenes: unknown option '%s' (lorastyle scenes --help)", a);
        if (rc < 0) return arg_fail();
    }
    int style = scene_style_from_name(style_name);
    if (style < 0) {
        ls_set_error("scenes: --style '%s': unknown (plain, ink, neon, mosaic, watercolour)", style_name);
        return arg_fail();
    }
    SceneSet set = !strcmp(set_name, "train") ? SCENE_TRAIN : !strcmp(set_name, "heldout") ? SCENE_HELDOUT
                   : !strcmp(set_name, "single") ? SCENE_SINGLE : (SceneSet)-1;
    if ((int)set < 0) {
        ls_set_error("scenes: --set '%s': unknown (train, heldout, single)", set_name);
        return arg_fail();
    }
    char cap[256];
    if (captions) {
        for (long i = 0; i < n; i++) {
            Scene s;
            scene_sample(&s, set, (uint64_t)seed, (uint64_t)i);
            scene_caption(&s, cap, sizeof cap);
            printf("%s\n", cap);
        }
        return 0;
    }
    if (!out) {
        ls_set_error("scenes: give -o DIR (or --captions)");
        return arg_fail();
    }
    char sub[64];
    snprintf(sub, sizeof sub, "%ld_%s", repeats, scene_style_names[style]);
    char *dir = ls_path_join(out, sub);
    if (ls_mkdir_p(dir) < 0) {
        free(dir);
        return arg_fail();
    }
    Image img = {(int)size, (int)size, 3, mallocCheck((size_t)size * size * 3)};
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        Scene s;
        scene_sample(&s, set, (uint64_t)seed, (uint64_t)i);
        int len = scene_caption(&s, cap, sizeof cap);
        scene_render(&s, style, (uint64_t)seed, (uint64_t)i, img.data, (int)size);
        char name[32];
        snprintf(name, sizeof name, "%04ld.png", i + 1);
        char *png = ls_path_join(dir, name);
        rc = image_write_png(png, &img, NULL, 0);
        memcpy(png + strlen(png) - 3, "txt", 3);
        cap[len] = '\n';
        if (rc == 0) rc = ls_write_file_atomic(png, cap, (size_t)len + 1);
        free(png);
    }
    free(img.data);
    if (rc < 0) {
        free(dir);
        return arg_fail();
    }
    fprintf(stderr, "lorastyle: wrote %ld %s scenes (seed %ld, %ldx%ld) to %s\n", n, scene_style_names[style], seed,
            size, size, dir);
    free(dir);
    return 0;
}
