import { formatBytes, openableUrl, sameOrigin } from './safe-url.ts';
import type { CardView, FileView, RefusedFileView } from './types.ts';

/** Pictures a browser shows by itself, and the hub serves inline (src/files/types.ts INLINE_IMAGE_TYPES). */
const THUMBNAIL_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);

/** What the person was told about a file the hub did not keep. */
const REFUSED_REASONS: Record<string, string> = {
  too_large: 'too large, not kept',
  type_refused: 'type not accepted, not kept',
  unavailable: 'could not be fetched',
};

const sizeOf = (size: number | undefined) => (typeof size === 'number' ? formatBytes(size) : undefined);

/**
 * One file of a message: a picture as a thumbnail that opens it, a sound with a player, anything
 * else as a link with its name and size. Only links on the hub are loaded into the page (the
 * console's CSP allows nothing else); a link that is not http(s) is shown as text.
 */
function Attachment(props: { file: FileView }) {
  const { file } = props;
  const name = file.name ?? file.type;
  const size = sizeOf(file.size);
  const url = openableUrl(file.url);
  const label = (
    <>
      <span class="file-name" dir="auto">
        {name}
      </span>
      {size && <span class="file-size">{size}</span>}
    </>
  );
  if (!url)
    return (
      <li class="file file-unlinked" title="No link to this file">
        {label}
      </li>
    );
  const local = sameOrigin(url);
  if (local && THUMBNAIL_TYPES.has(file.type))
    return (
      <li class="file file-image">
        <a href={url} target="_blank" rel="noopener noreferrer" title={`Open ${name}`}>
          <img class="thumbnail" src={url} alt={name} loading="lazy" />
        </a>
        <span class="file-caption">{label}</span>
      </li>
    );
  return (
    <li class={`file${file.type.startsWith('audio/') && local ? ' file-audio' : ''}`}>
      {file.type.startsWith('audio/') && local && (
        <audio controls preload="none" src={url}>
          <track kind="captions" />
        </audio>
      )}
      {/* A file on the hub downloads in place (the hub sends it as an attachment); another site's opens apart. */}
      <a
        class="file-link"
        href={url}
        {...(local ? { download: name } : { target: '_blank', rel: 'noopener noreferrer' })}
      >
        {label}
      </a>
    </li>
  );
}

function Refused(props: { file: RefusedFileView }) {
  const { file } = props;
  const size = sizeOf(file.size);
  return (
    <li class="file file-refused" data-reason={file.reason}>
      <span class="file-name" dir="auto">
        {file.name ?? file.type}
      </span>
      {size && <span class="file-size">{size}</span>}
      <span class="file-refusal">{REFUSED_REASONS[file.reason] ?? file.reason}</span>
      {file.message && (
        <span class="file-message" dir="auto">
          {file.message}
        </span>
      )}
    </li>
  );
}

export function Attachments(props: { files?: FileView[]; refused?: RefusedFileView[] }) {
  const files = props.files ?? [];
  const refused = props.refused ?? [];
  if (files.length === 0 && refused.length === 0) return null;
  return (
    <ul class="files" aria-label="Files">
      {files.map((f) => (
        <Attachment file={f} />
      ))}
      {refused.map((f) => (
        <Refused file={f} />
      ))}
    </ul>
  );
}

/**
 * Cards the bot sent, as the person saw them: title, text, picture, buttons. The buttons are not
 * pressed from here (the person presses them): a value button shows what it sends, a link button
 * is a link.
 */
export function Cards(props: { cards?: CardView[] }) {
  const cards = props.cards ?? [];
  if (cards.length === 0) return null;
  return (
    <ul class="cards" aria-label="Cards">
      {cards.map((card) => {
        const image = openableUrl(card.image?.url);
        return (
          <li class="card">
            {image && sameOrigin(image) ? (
              <img class="card-image" src={image} alt={card.image?.name ?? card.title ?? ''} loading="lazy" />
            ) : (
              image && (
                <a href={image} target="_blank" rel="noopener noreferrer">
                  {card.image?.name ?? 'Picture'}
                </a>
              )
            )}
            {card.title && (
              <strong class="card-title" dir="auto">
                {card.title}
              </strong>
            )}
            {card.text && (
              <p class="card-text" dir="auto">
                {card.text}
              </p>
            )}
            {(card.buttons ?? []).length > 0 && (
              <ul class="card-buttons">
                {(card.buttons ?? []).map((b) => {
                  const href = 'url' in b ? openableUrl(b.url) : undefined;
                  return (
                    <li>
                      {href ? (
                        <a href={href} target="_blank" rel="noopener noreferrer" dir="auto">
                          {b.title}
                        </a>
                      ) : (
                        <span
                          class="card-button"
                          dir="auto"
                          title={'value' in b ? `Sends "${b.value}"` : undefined}
                        >
                          {b.title}
                        </span>
                      )}
                    </li>
                  );
                })}
              </ul>
            )}
          </li>
        );
      })}
    </ul>
  );
}
