/* A stand-in for libpcaudio0, for running espeak-ng on a machine without ALSA or PulseAudio
   (an accelerator machine, say): espeak-ng writing WAV files (-w) never plays audio, but its
   library links libpcaudio, which links the sound servers' libraries.  Every call here fails
   as "no audio device".  Built by scripts/adapt_decoder_gpu.py pack. */
#include <stddef.h>

struct audio_object;

struct audio_object *create_audio_device_object(const char *device, const char *application,
                                                const char *description) { return NULL; }
int audio_object_open(struct audio_object *object, int format, unsigned int rate,
                      unsigned char channels) { return -1; }
void audio_object_close(struct audio_object *object) {}
void audio_object_destroy(struct audio_object *object) {}
int audio_object_write(struct audio_object *object, const void *data, size_t bytes) { return -1; }
int audio_object_drain(struct audio_object *object) { return -1; }
int audio_object_flush(struct audio_object *object) { return -1; }
const char *audio_object_strerror(struct audio_object *object, int error) {
    return "no audio device";
}
