/* infotext.h — the generation-parameters text AUTOMATIC1111 puts in a PNG's "parameters" chunk (its "PNG
 * Info"), parsed as A1111's parse_generation_parameters does:
 *
 *     a prompt, possibly
 *     over several lines <lora:ink:0.8>
 *     Negative prompt: blurry, and
 *     more negative lines
 *     Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, ...
 *
 * The last line holds the settings when it has at least 3 "Key: value" fields (else it is prompt text);
 * lines before "Negative prompt:" are the prompt, the rest the negative prompt; every line is stripped of
 * surrounding white space. A value holding ',', ':' or a line break is a JSON string ("Lora hashes":
 * "a: 0123, b: 4567"), unquoted here. Older A1111 (< 1.9) and lorastyle < 0.x wrote the schedule into the
 * sampler name ("DPM++ 2M Karras") and no "Schedule type"; sampler_from_display_name reads both. */
#ifndef LS_INFOTEXT_H
#define LS_INFOTEXT_H

#define INFOTEXT_MAX_FIELDS 64

typedef struct {
    char *prompt;   /* "" when there is none; <lora:...> tags are kept */
    char *negative; /* "" when there is no "Negative prompt:" line */
    int n;          /* settings in file order: key[i] = "Steps", value[i] = "20" (unquoted) */
    char *key[INFOTEXT_MAX_FIELDS], *value[INFOTEXT_MAX_FIELDS];
} InfoText;

/* Parse text into it (free with infotext_free, also after an error). LS_ERR on a malformed quoted value. */
int infotext_parse(InfoText *it, const char *text);
/* The value of the last field named key (case-sensitive, as A1111), or NULL. */
const char *infotext_get(const InfoText *it, const char *key);
void infotext_free(InfoText *it);

/* A value as A1111's infotext quote() writes it: as is, or a JSON string when it holds ',', ':' or a line
 * break (malloc'd). */
char *infotext_quote(const char *value);

#endif
