/* flite with its kal voices only, for an accelerator machine: Debian's flite binary links every
   voice (the evaluation voices awb, rms and slt among them, 27 MB), which does not fit the kit.
   Usage: flite_kal kal|kal16 TEXT OUT.wav.  scripts/adapt_decoder_gpu.py pack --flite builds it
   with gcc against the headers and libraries of flite's Debian packages, which it downloads. */
#include <stdio.h>
#include <string.h>
#include <flite/flite.h>

cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "kal") && strcmp(argv[1], "kal16"))) {
        fprintf(stderr, "usage: %s kal|kal16 TEXT OUT.wav\n", argv[0]);
        return 2;
    }
    flite_init();
    cst_voice *voice = strcmp(argv[1], "kal") ? register_cmu_us_kal16(NULL)
                                              : register_cmu_us_kal(NULL);
    cst_wave *wave = flite_text_to_wave(argv[2], voice);
    if (wave == NULL || cst_wave_save_riff(wave, argv[3]) != 0) {
        fprintf(stderr, "%s: could not voice or write %s\n", argv[0], argv[3]);
        return 1;
    }
    delete_wave(wave);
    return 0;
}
