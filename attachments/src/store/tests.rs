use std::time::Duration;

use futures_util::TryStreamExt;

use super::*;

fn png() -> Bytes {
    let image = image::DynamicImage::new_rgb8(640, 480);
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    Bytes::from(bytes.into_inner())
}

fn opened(directory: &tempfile::TempDir) -> Attachments {
    opened_with(directory, 256 << 20)
}

fn opened_with(directory: &tempfile::TempDir, preview_memory: u64) -> Attachments {
    let previews = Previews::new(preview_memory, Duration::from_secs(1)).unwrap();
    Attachments::open(&format!("file://{}", directory.path().display()), previews).unwrap()
}

async fn whole(download: Download) -> Bytes {
    let chunks: Vec<Bytes> = download.body.try_collect().await.unwrap();
    Bytes::from(chunks.concat())
}

#[tokio::test]
async fn an_upload_is_kept_described_read_back_and_deleted_with_its_conversation() {
    let directory = tempfile::tempdir().unwrap();
    let store = opened(&directory);
    let conversation = ConversationId::new(7).unwrap();
    let other = ConversationId::new(8).unwrap();
    let ana = UserId::new("ana").unwrap();
    let saved = store.save(conversation, &ana, "plan.png", png()).await.unwrap();
    let id = saved.upload_id.clone().unwrap();
    assert_eq!((saved.width, saved.height), (Some(640), Some(480)));
    assert_eq!(saved.mime_type, "image/png");
    assert_eq!(saved.url, format!("/v1/conversations/7/attachments/{id}"));
    assert_eq!(store.describe(conversation, &id).await.unwrap(), Some(saved.clone()));
    assert_eq!(store.describe(other, &id).await.unwrap(), None, "another conversation's");
    assert_eq!(store.describe(conversation, "../../etc").await.unwrap(), None);
    let original = store.read(conversation, &id, Rendition::Original).await.unwrap().unwrap();
    assert!(original.inline);
    let kept = whole(original).await;
    let shown = image::load_from_memory(&kept).unwrap();
    assert_eq!(shown.to_rgb8(), image::load_from_memory(&png()).unwrap().to_rgb8());
    let thumbnail = store.read(conversation, &id, Rendition::Thumbnail).await.unwrap().unwrap();
    assert_eq!(thumbnail.mime_type, "image/jpeg");

    let text = store.save(conversation, &ana, "notes.html", Bytes::from("hi")).await.unwrap();
    assert_eq!(text.name, "notes.txt", "saved under the sniffed type's extension");
    let text_id = text.upload_id.unwrap();
    assert!(store.read(conversation, &text_id, Rendition::Thumbnail).await.unwrap().is_none());
    let refused = store.save(conversation, &ana, "x.html", Bytes::from("<html>")).await;
    assert!(matches!(refused, Err(SaveError::Refused(_))));

    assert_eq!(store.delete_conversation(conversation).await.unwrap(), 5);
    assert_eq!(store.describe(conversation, &id).await.unwrap(), None);
    let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "indexes went with the files: {left:?}");
}

#[tokio::test]
async fn quotas_count_what_a_conversation_and_a_user_keep() {
    let directory = tempfile::tempdir().unwrap();
    let store = opened(&directory).with_quotas(Quotas { per_conversation: 250, per_user: 350 });
    let (one, two) = (ConversationId::new(1).unwrap(), ConversationId::new(2).unwrap());
    let ana = UserId::new("ana").unwrap();
    let bo = UserId::new("bo").unwrap();
    let file = Bytes::from("x".repeat(100));
    store.save(one, &ana, "a.txt", file.clone()).await.unwrap();
    store.save(one, &bo, "b.txt", file.clone()).await.unwrap();
    let full = store.save(one, &ana, "c.txt", file.clone()).await.unwrap_err();
    assert!(matches!(&full, SaveError::OverQuota(text) if text.contains("conversation")));
    store.save(two, &ana, "d.txt", file.clone()).await.unwrap();
    store.save(ConversationId::new(3).unwrap(), &ana, "e.txt", file.clone()).await.unwrap();
    let user = store.save(ConversationId::new(4).unwrap(), &ana, "f.txt", file).await;
    assert!(matches!(&user, Err(SaveError::OverQuota(text)) if text.contains("you keep")));
}

#[tokio::test]
async fn uploads_no_message_carries_are_swept_and_sent_ones_kept() {
    let directory = tempfile::tempdir().unwrap();
    let store =
        opened(&directory).with_quotas(Quotas { per_conversation: 1 << 20, per_user: 1 << 20 });
    let conversation = ConversationId::new(5).unwrap();
    let ana = UserId::new("ana").unwrap();
    let sent = store.save(conversation, &ana, "sent.png", png()).await.unwrap();
    let unsent = store.save(conversation, &ana, "left.png", png()).await.unwrap();
    let (sent_id, unsent_id) = (sent.upload_id.unwrap(), unsent.upload_id.unwrap());
    store.mark_sent(conversation, &sent_id).await.unwrap();
    assert_eq!(store.sweep(Duration::from_secs(3600)).await.unwrap(), Swept::default());
    let swept = store.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(swept.uploads, 1);
    assert!(swept.bytes > png().len() as u64 / 2, "the original and thumbnail: {swept:?}");
    assert!(store.describe(conversation, &unsent_id).await.unwrap().is_none());
    assert!(store.read(conversation, &unsent_id, Rendition::Original).await.unwrap().is_none());
    assert!(store.describe(conversation, &sent_id).await.unwrap().is_some());
    assert_eq!(store.sweep(Duration::ZERO).await.unwrap(), Swept::default(), "done once");
    let by_user: Vec<_> =
        store.store.list(Some(&Path::from("by-user"))).try_collect().await.unwrap();
    assert_eq!(by_user.len(), 1, "the swept upload no longer counts against its uploader");
}

#[tokio::test]
async fn an_upload_cut_short_before_its_description_is_swept_with_its_indexes() {
    let directory = tempfile::tempdir().unwrap();
    let store = opened(&directory);
    let conversation = ConversationId::new(6).unwrap();
    let saved = store.save(conversation, &UserId::new("ana").unwrap(), "a.png", png()).await;
    let id = saved.unwrap().upload_id.unwrap();
    // As if the node had died before writing the description.
    store.store.delete(&folder(conversation, &id).join("meta.json")).await.unwrap();
    assert_eq!(store.sweep(Duration::ZERO).await.unwrap().uploads, 1);
    let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "nothing of it is left to count against anyone: {left:?}");
}

#[tokio::test]
async fn an_image_larger_than_the_preview_budget_is_kept_without_a_thumbnail() {
    let directory = tempfile::tempdir().unwrap();
    let store = opened_with(&directory, 1 << 20);
    let conversation = ConversationId::new(9).unwrap();
    let saved = store.save(conversation, &UserId::new("ana").unwrap(), "big", png()).await;
    let saved = saved.unwrap();
    assert_eq!((saved.width, saved.height, saved.thumbnail_url), (Some(640), Some(480), None));
    assert_eq!(saved.name, "big.png");
    let id = saved.upload_id.unwrap();
    let original = store.read(conversation, &id, Rendition::Original).await.unwrap().unwrap();
    assert!(!original.inline, "served as a file, not shown in the page");
}

#[test]
fn locations_other_than_files_and_s3_are_refused() {
    let previews = || Previews::new(1 << 20, Duration::from_secs(1)).unwrap();
    assert!(Attachments::open("ftp://host/files", previews()).is_err());
    assert!(Attachments::open("s3://", previews()).is_err());
}
