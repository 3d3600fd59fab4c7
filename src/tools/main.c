/* rwkv: the command-line front end. Each subcommand lives in its own cmd_*.c file. */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"gen", cmd_gen, "generate text and report prefill/generation speed (the main job)"},
    {"batch", cmd_batch, "generate from many prompts at once (a batching demo)"},
    {"bench", cmd_bench, "llama-bench style prefill/generation benchmark"},
    {"logits", cmd_logits, "run token sequences and write float32 logits"},
    {"tokenize", cmd_tokenize, "stdin bytes -> token ids"},
    {"detokenize", cmd_detokenize, "stdin token ids -> bytes"},
    {"info", cmd_info, "print a model's version, dimensions and sizes"},
    {"synth", cmd_synth, "write a random-weight model of real shape"},
    {"convert", cmd_convert, "convert a PyTorch .pth checkpoint to web-rwkv .st"},
    {"save", cmd_save, "write a loaded (LoRA-merged) model in the engine's format"},
    {"devices", cmd_devices, "list compute devices"},
};

static void usage(FILE *f)
{
    fprintf(f, "rwkv %s - RWKV v4/v5/v6/v7 inference\n\nusage: rwkv COMMAND [options]\n\n", RWKV_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nrwkv COMMAND --help shows a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("rwkv %s\n", RWKV_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rwkv: unknown command '%s' (rwkv --help lists them)\n", argv[1]);
    return 2;
}
